import { type StatsSnapshot, watchStats } from '../grpc/monitoring-client.js'
import type { HelixConfig } from '../shared/config.js'
import type { HelixHome } from '../shared/home.js'
import { locateGrpcFace } from './status.js'

export interface TopOptions {
  home: HelixHome
  config: HelixConfig
  /** The daemon's REST URL; default: the running daemon's record, else helix.yaml. */
  url?: string
  /** A key with the monitor or admin scope (needed when auth is on). */
  apiKey?: string
  intervalMs: number
  /** Stop after this many snapshots; 0: until `signal` aborts or the daemon drains. */
  count: number
  gpus: boolean
  signal?: AbortSignal
}

/**
 * `helix top`: the daemon's own live figures, from MonitoringService/WatchStats on its gRPC face
 * (server, traffic, models, GPUs, firing alerts), one snapshot every `intervalMs`.
 */
export async function watchDaemon(
  options: TopOptions,
  onSnapshot: (snapshot: StatsSnapshot, target: string) => void,
): Promise<void> {
  const face = await locateGrpcFace(options)
  await watchStats(
    face.target,
    {
      tls: face.tls,
      ca: face.ca,
      cert: face.cert,
      key: face.key,
      apiKey: options.apiKey,
      intervalMs: options.intervalMs,
      maxSnapshots: options.count,
      includeGpus: options.gpus,
      signal: options.signal,
    },
    (snapshot) => onSnapshot(snapshot, face.target),
  )
}
