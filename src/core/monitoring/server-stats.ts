import { PACKAGE_VERSION } from '../../shared/package-version.js'
import type { ModelService } from '../infer/types.js'
import type { HelixMetrics } from '../metrics.js'
import {
  type GrpcClassifier,
  type ProtocolInferences,
  type ProtocolRequests,
  readTraffic,
} from './metric-readers.js'
import {
  type CpuMeter,
  type EventLoopLag,
  eventLoopLag,
  type ProcessCpu,
  type ProcessMemory,
  processMemory,
} from './process-stats.js'

export interface ServerStatsReport {
  version: string
  startedAt: Date
  uptimeSeconds: number
  processUptimeSeconds: number
  nodeVersion: string
  pid: number
  memory: ProcessMemory
  cpu: ProcessCpu
  eventLoop: EventLoopLag
  /** Inference requests waiting in scheduler queues, over all model versions. */
  queuedRequests: number
  /** Streams the face serving the call has open now. */
  openStreams: number
  ready: boolean
  draining: boolean
  modelsReady: number
  modelVersions: number
  requests: ProtocolRequests[]
  inferences: ProtocolInferences[]
}

export interface ServerStatsSources {
  service: ModelService
  metrics: HelixMetrics
  grpc: GrpcClassifier
  startedAt: Date
  cpu: CpuMeter
  openStreams: number
  draining: boolean
}

/** The process and the daemon at this moment, and what they have served since they started. */
export async function serverStats(sources: ServerStatsSources): Promise<ServerStatsReport> {
  const index = sources.service.index()
  const traffic = await readTraffic(sources.metrics, sources.grpc)
  return {
    version: PACKAGE_VERSION,
    startedAt: sources.startedAt,
    uptimeSeconds: (Date.now() - sources.startedAt.getTime()) / 1000,
    processUptimeSeconds: process.uptime(),
    nodeVersion: process.version,
    pid: process.pid,
    memory: processMemory(),
    cpu: sources.cpu.read(),
    eventLoop: eventLoopLag(),
    queuedRequests: index.reduce((n, e) => n + (e.queueDepth ?? 0), 0),
    openStreams: sources.openStreams,
    ready: sources.service.isReady() && !sources.draining,
    draining: sources.draining,
    modelsReady: index.filter((e) => e.state === 'READY').length,
    modelVersions: index.filter((e) => e.version !== '').length,
    requests: traffic.requests,
    inferences: traffic.inferences,
  }
}
