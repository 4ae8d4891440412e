import { type Client, type ClientReadableStream, Metadata, type ServiceError } from '@grpc/grpc-js'
import { Failure, UserError } from '../shared/errors.js'
import { type ClientConstructor, channelCredentials, type GrpcHealthOptions } from './health-client.js'
import { loadProtos } from './protos.js'
import { statusName } from './status.js'

/** A latency or batch-size histogram as MonitoringService sends it. */
export interface WireHistogram {
  count: string
  sum: number
  mean: number
  p50: number
  p95: number
  p99: number
}

export interface WireOutcome {
  status: string
  protocol: string
  count: string
}

export interface WireVersionStats {
  version: string
  state: string
  requests: string
  successes: string
  failures: string
  queue_seconds?: WireHistogram
  compute_seconds?: WireHistogram
}

export interface WireModelStats {
  name: string
  requests: string
  successes: string
  failures: string
  outcomes: WireOutcome[]
  versions: WireVersionStats[]
  batch_size?: WireHistogram
}

export interface WireGpu {
  index: number
  name: string
  memory_total_mib: number
  memory_used_mib: number
  utilization_gpu_percent?: number
  temperature_celsius?: number
  power_draw_watts?: number
}

export interface WireAlert {
  name: string
  severity: string
  summary: string
  labels: Record<string, string>
}

/** One helix.monitoring.v1 StatsSnapshot (64-bit counters as strings, as the loader decodes them). */
export interface StatsSnapshot {
  sequence: string
  at: string
  server: {
    version: string
    uptime_seconds: number
    pid: number
    memory?: { rss_bytes: string; heap_used_bytes: string }
    cpu?: { percent: number; cores: number; load_average: number[] }
    event_loop?: { p99_ms: number; max_ms: number }
    queued_requests: number
    open_streams: number
    ready: boolean
    draining: boolean
    models_ready: number
    model_versions: number
    requests: { protocol: string; requests: string; failures: string; server_errors: string }[]
    inferences: { protocol: string; requests: string; items: string }[]
  }
  models: WireModelStats[]
  alerts: WireAlert[]
  gpus?: { gpus: WireGpu[]; reason: string; sampled_at: string }
}

export interface WatchStatsOptions extends Omit<GrpcHealthOptions, 'service'> {
  /** API key or access token, sent as `authorization: Bearer …` metadata. */
  apiKey?: string
  intervalMs: number
  /** End after this many snapshots; 0: until `signal` aborts. */
  maxSnapshots: number
  includeGpus: boolean
  signal?: AbortSignal
}

type WatchClient = Client & {
  WatchStats(
    request: { interval_ms: number; max_snapshots: number; include_gpus: boolean },
    metadata: Metadata,
  ): ClientReadableStream<StatsSnapshot>
}

/** What a failed WatchStats means to the person at the terminal, and what to do. */
function watchFailure(err: ServiceError, target: string): Error {
  const code = statusName(err.code)
  const details = (err.details ?? '').split('\n')[0]
  switch (code) {
    case 'UNAUTHENTICATED':
      return new UserError('UNAUTHENTICATED', `The daemon at ${target} refused the call: ${details}`, {
        hint: 'Pass an API key with the monitor (or admin) scope: --key or HELIX_API_KEY.',
      })
    case 'PERMISSION_DENIED':
      return new UserError('FORBIDDEN', `The daemon at ${target} refused the call: ${details}`, {
        hint: 'Use a key with the monitor or admin scope (helix apikeys create --scope monitor).',
      })
    case 'UNAVAILABLE':
      return new Failure(
        'DAEMON_UNREACHABLE',
        `No answer from the daemon's gRPC face at ${target}: ${details}`,
        {
          hint: 'Start it with `helix serve` or `helix up`; `helix status` shows where it listens.',
        },
      )
    default:
      return new Failure('DAEMON_REFUSED', `WatchStats on ${target} failed with ${code}: ${details}`)
  }
}

/**
 * helix.monitoring.v1.MonitoringService/WatchStats against `target`: calls `onSnapshot` for every
 * snapshot until `maxSnapshots` arrived, the server ends the stream (draining), or `signal` aborts.
 */
export async function watchStats(
  target: string,
  options: WatchStatsOptions,
  onSnapshot: (snapshot: StatsSnapshot) => void,
): Promise<void> {
  const Service = (
    loadProtos().grpc.helix as unknown as { monitoring: { v1: { MonitoringService: unknown } } }
  ).monitoring.v1.MonitoringService as ClientConstructor<WatchClient>
  const client = new Service(target, channelCredentials(options))
  const metadata = new Metadata()
  if (options.apiKey) metadata.set('authorization', `Bearer ${options.apiKey}`)
  try {
    await new Promise<void>((resolve, reject) => {
      const call = client.WatchStats(
        {
          interval_ms: options.intervalMs,
          max_snapshots: options.maxSnapshots,
          include_gpus: options.includeGpus,
        },
        metadata,
      )
      const stop = () => call.cancel()
      options.signal?.addEventListener('abort', stop, { once: true })
      call.on('data', (snapshot: StatsSnapshot) => {
        try {
          onSnapshot(snapshot)
        } catch (err) {
          call.cancel()
          reject(err)
        }
      })
      call.on('error', (err: ServiceError) => {
        options.signal?.removeEventListener('abort', stop)
        if (statusName(err.code) === 'CANCELLED' && options.signal?.aborted) resolve()
        else reject(watchFailure(err, target))
      })
      call.on('end', () => {
        options.signal?.removeEventListener('abort', stop)
        resolve()
      })
    })
  } finally {
    client.close()
  }
}
