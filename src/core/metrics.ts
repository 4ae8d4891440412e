import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import { isHelixError } from '../shared/errors.js'
import type { GenerationStats, TextEngine } from './generate/types.js'
import type { InferResult, ModelService } from './infer/types.js'
import { registerEventLoopUtilization } from './monitoring/apm-metrics.js'

/** The model or version label of requests that named one the repository does not have. */
export const UNKNOWN_NAME = '(unknown)'

/** The face a request came through, as the protocol label says it. */
export type Protocol = 'rest' | 'grpc' | 'websocket'

/** Buckets of the per-request queue and compute histograms: 0.5 ms to 2.5 s. */
const INFERENCE_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

/** Buckets of time to first token: prefill plus queueing, 10 ms to 30 s. */
const FIRST_TOKEN_SECONDS_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
/** Buckets of the gap between two tokens of one sequence: one decode step, 1 ms to 2.5 s. */
const INTER_TOKEN_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

/** The text API a request came through (a bounded label). */
export type TextEndpoint = 'chat' | 'completions' | 'embeddings' | 'generate' | 'generate_stream' | 'realtime'

/** How a text request ended: a finish reason, or how it did not finish. */
export type TextOutcome = 'stop' | 'length' | 'none' | 'error' | 'cancelled'

export type TokenKind = 'prompt' | 'completion'

/**
 * The generation scheduler's live figures of one engine, or undefined while the engine does not
 * report them. The hook the text gauges read: it takes them from an engine's `stats()` method.
 */
export function generationStatsOf(engine: TextEngine): GenerationStats | undefined {
  const reporting = engine as TextEngine & { stats?: () => GenerationStats }
  return typeof reporting.stats === 'function' ? reporting.stats() : undefined
}

/**
 * Whether a version is unavailable on purpose: unloaded by an operator ("unloaded"), evicted by the
 * memory budget ("unloaded: least recently used…"), or never loaded by models.load ("not loaded…").
 */
function isIntentional(reason: string | undefined): boolean {
  return reason !== undefined && (reason.startsWith('unloaded') || reason.startsWith('not loaded'))
}

/**
 * The daemon's Prometheus metrics. The names are a contract: the generated alert rules and Grafana
 * dashboard query them. One registry per app so several apps (tests) never share counters.
 */
export class HelixMetrics {
  readonly registry = new Registry()

  readonly httpRequests = new Counter({
    name: 'helix_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  })

  readonly requestDuration = new Histogram({
    name: 'helix_request_duration_seconds',
    help: 'Time from request received to response sent, by method, route pattern and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  })

  readonly rateLimitStoreErrors = new Counter({
    name: 'helix_rate_limit_store_errors_total',
    help: 'Rate-limit checks the limiter store (Redis) did not answer, by policy (per-ip, per-key, quota-day, …) and outcome under rate_limit.on_store_error (admitted: fail-open, refused: fail-closed).',
    labelNames: ['policy', 'outcome'] as const,
    registers: [this.registry],
  })

  readonly usageRowsDropped = new Counter({
    name: 'helix_usage_rows_dropped_total',
    help: 'Request-log rows dropped because more were kept than the usage recorder holds while the database was unavailable.',
    registers: [this.registry],
  })

  readonly logWriteErrors = new Counter({
    name: 'helix_log_write_errors_total',
    help: 'Writes of log lines that failed (a full disk, an I/O error); the lines are written again with the next one.',
    registers: [this.registry],
  })

  readonly logLinesDropped = new Counter({
    name: 'helix_log_lines_dropped_total',
    help: 'Log lines dropped because 16 MiB were already waiting for an output that failed.',
    registers: [this.registry],
  })

  readonly realtimeConnections = new Gauge({
    name: 'helix_realtime_connections',
    help: 'Open WebSocket connections on /v1/realtime (authenticated or not yet).',
    registers: [this.registry],
  })

  readonly realtimeFrames = new Counter({
    name: 'helix_realtime_frames_total',
    help: 'WebSocket frames on /v1/realtime by direction (in, out) and frame type (invalid: not a known frame).',
    labelNames: ['direction', 'type'] as const,
    registers: [this.registry],
  })

  readonly realtimeCloses = new Counter({
    name: 'helix_realtime_closes_total',
    help: 'Closed /v1/realtime connections by reason (client: a clean close, dropped, unauthenticated, revoked, expired, slow_consumer, heartbeat, taken_over, too_many).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  })

  readonly realtimeResumes = new Counter({
    name: 'helix_realtime_resumes_total',
    help: 'Resumes of /v1/realtime sessions by outcome (resumed, refused).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  })

  readonly inferenceQueue = new Histogram({
    name: 'helix_inference_queue_seconds',
    help: 'Time an inference request waited in its scheduler queue.',
    labelNames: ['model', 'version'] as const,
    buckets: INFERENCE_SECONDS_BUCKETS,
    registers: [this.registry],
  })

  readonly inferenceCompute = new Histogram({
    name: 'helix_inference_compute_seconds',
    help: 'Backend time of the batch an inference request ran in.',
    labelNames: ['model', 'version'] as const,
    buckets: INFERENCE_SECONDS_BUCKETS,
    registers: [this.registry],
  })

  readonly batchSize = new Histogram({
    name: 'helix_inference_batch_size',
    help: 'Size of the batch each inference request ran in.',
    labelNames: ['model'] as const,
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers: [this.registry],
  })

  readonly busySeconds = new Counter({
    name: 'helix_model_busy_seconds_total',
    help: "Seconds a model version's instances spent computing batches (rate / instances = how busy they are).",
    labelNames: ['model', 'version'] as const,
    registers: [this.registry],
  })

  readonly inferenceRequests = new Counter({
    name: 'helix_inference_requests_total',
    help: 'Inference requests by model, version that answered, outcome (success or an error code) and protocol (rest, grpc).',
    labelNames: ['model', 'version', 'status', 'protocol'] as const,
    registers: [this.registry],
  })

  readonly grpcRequests = new Counter({
    name: 'helix_grpc_requests_total',
    help: 'gRPC calls answered, by full method name and status code name (OK, NOT_FOUND, ...).',
    labelNames: ['method', 'code'] as const,
    registers: [this.registry],
  })

  readonly grpcDuration = new Histogram({
    name: 'helix_grpc_request_duration_seconds',
    help: 'Time from a gRPC call received to its status sent, by full method name and status code name.',
    labelNames: ['method', 'code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  })

  readonly textFirstToken = new Histogram({
    name: 'helix_text_time_to_first_token_seconds',
    help: 'Time from a generation request received to the first token of each of its sequences, by model.',
    labelNames: ['model'] as const,
    buckets: FIRST_TOKEN_SECONDS_BUCKETS,
    registers: [this.registry],
  })

  readonly textInterToken = new Histogram({
    name: 'helix_text_inter_token_latency_seconds',
    help: 'Time between two consecutive tokens of one sequence, by model.',
    labelNames: ['model'] as const,
    buckets: INTER_TOKEN_SECONDS_BUCKETS,
    registers: [this.registry],
  })

  readonly textTokens = new Counter({
    name: 'helix_text_tokens_total',
    help: 'Tokens of text models by model and kind (prompt: read, completion: generated).',
    labelNames: ['model', 'kind'] as const,
    registers: [this.registry],
  })

  readonly textRequests = new Counter({
    name: 'helix_text_requests_total',
    help: 'Text-model requests by model, endpoint (chat, completions, embeddings, generate, generate_stream, realtime) and finish_reason (stop, length; none for embeddings; error, cancelled).',
    labelNames: ['model', 'endpoint', 'finish_reason'] as const,
    registers: [this.registry],
  })

  /**
   * Told of every text request's tokens with the caller's API key id (null without one); the daemon
   * points it at the per-key business series, which bound their labels (monitoring/business-metrics.ts).
   */
  onTextTokens?: (keyId: string | null, model: string, kind: TokenKind, tokens: number) => void

  /** Token timing of one model's generations, as the API face sees it. */
  tokenTiming(model: string): { firstToken(seconds: number): void; interToken(seconds: number): void } {
    const first = this.textFirstToken.labels(model)
    const gap = this.textInterToken.labels(model)
    return { firstToken: (s) => first.observe(s), interToken: (s) => gap.observe(s) }
  }

  /**
   * One text request that reached a model (`model` is the repository's name, never the client's
   * text, so labels stay bounded): its outcome and its tokens.
   */
  textDone(
    model: string,
    endpoint: TextEndpoint,
    outcome: TextOutcome,
    tokens: { prompt: number; completion: number },
    keyId: string | null = null,
  ): void {
    this.textRequests.inc({ model, endpoint, finish_reason: outcome })
    for (const kind of ['prompt', 'completion'] as const) {
      if (tokens[kind] <= 0) continue
      this.textTokens.inc({ model, kind }, tokens[kind])
      this.onTextTokens?.(keyId, model, kind, tokens[kind])
    }
  }

  /** A text request that failed before a model took it (unknown model, wrong task, bad body). */
  textRefused(endpoint: TextEndpoint): void {
    this.textRequests.inc({ model: UNKNOWN_NAME, endpoint, finish_reason: 'error' })
  }

  /** One answered inference: its outcome, queue and compute time, and the batch it ran in. */
  inferenceDone(protocol: Protocol, result: InferResult): void {
    const labels = { model: result.modelName, version: result.modelVersion }
    const { queueMs, computeMs, batchSize } = result.timing
    this.inferenceRequests.inc({ ...labels, status: 'success', protocol })
    this.inferenceQueue.observe(labels, queueMs / 1000)
    this.inferenceCompute.observe(labels, computeMs / 1000)
    this.batchSize.observe({ model: result.modelName }, batchSize)
    // Each request of a batch adds its share, so a batch's compute time is counted once.
    if (batchSize > 0) this.busySeconds.inc(labels, computeMs / 1000 / batchSize)
  }

  /** One failed inference, counted under its error code (INTERNAL for anything that is not a HelixError). */
  inferenceFailed(protocol: Protocol, model: string, version: string | undefined, err: unknown): void {
    const status = isHelixError(err) ? err.code : 'INTERNAL'
    // A model or version the repository does not have was named by the client: as a label it would
    // let anyone create series at will, so such requests share one.
    const noModel = status === 'MODEL_NOT_FOUND'
    const noVersion = noModel || status === 'VERSION_NOT_FOUND'
    this.inferenceRequests.inc({
      model: noModel ? UNKNOWN_NAME : model,
      version: noVersion && version ? UNKNOWN_NAME : (version ?? ''),
      status,
      protocol,
    })
  }

  constructor(
    service: ModelService,
    options: {
      defaultMetrics?: boolean
      /** notAfter of the helix certificates by role (ca, server, client), for helix_cert_expiry_seconds. */
      certificates?: () => { cert: string; notAfter: Date }[]
    } = {},
  ) {
    // Gauges read the core at scrape time, so they are never stale and cost nothing between scrapes.
    new Gauge({
      name: 'helix_inference_queue_depth',
      help: 'Requests waiting in a model version scheduler queue.',
      labelNames: ['model', 'version'] as const,
      registers: [this.registry],
      collect() {
        this.reset()
        for (const entry of service.index()) {
          this.set({ model: entry.name, version: entry.version }, entry.queueDepth ?? 0)
        }
      },
    })
    new Gauge({
      name: 'helix_inference_queue_capacity',
      help: 'The bound of a model version scheduler queue; beyond it requests get 429.',
      labelNames: ['model', 'version'] as const,
      registers: [this.registry],
      collect() {
        this.reset()
        for (const entry of service.index()) {
          if (entry.queueCapacity !== undefined)
            this.set({ model: entry.name, version: entry.version }, entry.queueCapacity)
        }
      },
    })
    // Loads since the daemon started (the lifecycle keeps them): time, count, failures by kind.
    const loads = () => service.loadStats?.() ?? []
    new Counter({
      name: 'helix_model_loads_total',
      help: 'Model versions loaded (READY) since the daemon started.',
      labelNames: ['model'] as const,
      registers: [this.registry],
      collect() {
        this.reset()
        for (const stats of loads()) this.inc({ model: stats.model }, stats.loads)
      },
    })
    new Counter({
      name: 'helix_model_load_seconds_total',
      help: 'Seconds spent loading model versions (failed loads included).',
      labelNames: ['model'] as const,
      registers: [this.registry],
      collect() {
        this.reset()
        for (const stats of loads()) this.inc({ model: stats.model }, stats.loadSeconds)
      },
    })
    new Gauge({
      name: 'helix_model_last_load_seconds',
      help: 'Seconds the last load of a version of the model took, whatever its outcome.',
      labelNames: ['model'] as const,
      registers: [this.registry],
      collect() {
        this.reset()
        for (const stats of loads()) this.set({ model: stats.model }, stats.lastLoadSeconds)
      },
    })
    new Counter({
      name: 'helix_model_load_failures_total',
      help: 'Failed loads of model versions by reason: crashed (a loaded version whose worker threads or processes kept stopping), missing_file, memory_budget, device, config, warmup, invalid_model.',
      labelNames: ['model', 'reason'] as const,
      registers: [this.registry],
      collect() {
        this.reset()
        for (const stats of loads())
          for (const [reason, count] of Object.entries(stats.failures))
            this.inc({ model: stats.model, reason }, count ?? 0)
      },
    })
    const certificates = options.certificates
    if (certificates) {
      new Gauge({
        name: 'helix_cert_expiry_seconds',
        help: 'Seconds until a helix certificate expires (negative once expired); label cert is its role.',
        labelNames: ['cert'] as const,
        registers: [this.registry],
        collect() {
          this.reset()
          for (const { cert, notAfter } of certificates())
            this.set({ cert }, (notAfter.getTime() - Date.now()) / 1000)
        },
      })
    }
    new Gauge({
      name: 'helix_model_ready',
      help: '1 when a model version is READY, else 0; provider is the execution provider in use.',
      labelNames: ['model', 'version', 'provider'] as const,
      registers: [this.registry],
      collect() {
        this.reset()
        for (const entry of service.index()) {
          this.set(
            { model: entry.name, version: entry.version, provider: entry.executionProvider ?? 'none' },
            entry.state === 'READY' ? 1 : 0,
          )
        }
      },
    })
    new Gauge({
      name: 'helix_model_unloaded',
      help: '1 for a model version an operator unloaded (or the memory budget evicted, or models.load left unloaded): not ready on purpose, so HelixModelNotReady stays quiet.',
      labelNames: ['model', 'version'] as const,
      registers: [this.registry],
      collect() {
        this.reset()
        for (const entry of service.index())
          if (entry.state === 'UNAVAILABLE' && isIntentional(entry.reason))
            this.set({ model: entry.name, version: entry.version }, 1)
      },
    })
    // The generation scheduler of each ready text-model version (generationStatsOf is the hook).
    const textStats = () =>
      (service.textModels?.() ?? []).flatMap((t) => {
        const stats = generationStatsOf(t.engine)
        return stats ? [{ labels: { model: t.modelName, version: t.modelVersion }, stats }] : []
      })
    new Gauge({
      name: 'helix_text_sequences',
      help: 'Sequences of a text-model version by state: running (in the batch) or waiting (queued).',
      labelNames: ['model', 'version', 'state'] as const,
      registers: [this.registry],
      collect() {
        this.reset()
        for (const { labels, stats } of textStats()) {
          this.set({ ...labels, state: 'running' }, stats.running)
          this.set({ ...labels, state: 'waiting' }, stats.waiting)
        }
      },
    })
    new Gauge({
      name: 'helix_text_kv_cache_bytes',
      help: 'KV-cache bytes in use by a text-model version.',
      labelNames: ['model', 'version'] as const,
      registers: [this.registry],
      collect() {
        this.reset()
        for (const { labels, stats } of textStats()) this.set(labels, stats.kvCacheBytes)
      },
    })
    new Gauge({
      name: 'helix_text_kv_cache_budget_bytes',
      help: 'KV-cache bytes a text-model version may use; past it new sequences wait.',
      labelNames: ['model', 'version'] as const,
      registers: [this.registry],
      collect() {
        this.reset()
        for (const { labels, stats } of textStats()) this.set(labels, stats.kvCacheBudgetBytes)
      },
    })
    if (options.defaultMetrics !== false) {
      // Process CPU and memory, heap, GC durations, event-loop lag percentiles; utilisation beside them.
      collectDefaultMetrics({ register: this.registry, prefix: 'helix_' })
      registerEventLoopUtilization(this.registry)
    }
  }
}
