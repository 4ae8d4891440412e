import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'
import { isHelixError } from '../shared/errors.js'
import type { InferResult, ModelService } from './infer/types.js'
import { registerEventLoopUtilization } from './monitoring/apm-metrics.js'

/** The model or version label of requests that named one the repository does not have. */
export const UNKNOWN_NAME = '(unknown)'

/** The face a request came through, as the protocol label says it. */
export type Protocol = 'rest' | 'grpc'

/** Buckets of the per-request queue and compute histograms: 0.5 ms to 2.5 s. */
const INFERENCE_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

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

  /** One answered inference: its outcome, queue and compute time, and the batch it ran in. */
  inferenceDone(protocol: Protocol, result: InferResult): void {
    const labels = { model: result.modelName, version: result.modelVersion }
    const { queueMs, computeMs, batchSize } = result.timing
    this.inferenceRequests.inc({ ...labels, status: 'success', protocol })
    this.inferenceQueue.observe(labels, queueMs / 1000)
    this.inferenceCompute.observe(labels, computeMs / 1000)
    this.batchSize.observe({ model: result.modelName }, batchSize)
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
    if (options.defaultMetrics !== false) {
      // Process CPU and memory, heap, GC durations, event-loop lag percentiles; utilisation beside them.
      collectDefaultMetrics({ register: this.registry, prefix: 'helix_' })
      registerEventLoopUtilization(this.registry)
    }
  }
}
