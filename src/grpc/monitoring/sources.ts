import { status } from '@grpc/grpc-js'
import { discoverGpus } from '../../core/gpu/nvidia-smi.js'
import type { Identity } from '../../core/identity/identity.js'
import type { ModelService } from '../../core/infer/types.js'
import { HelixMetrics } from '../../core/metrics.js'
import { type Alert, evaluateAlerts, ServedWindow } from '../../core/monitoring/alerts.js'
import type { DaemonSettings } from '../../core/monitoring/config-summary.js'
import { GpuSampler, type NvidiaSmiOptions } from '../../core/monitoring/gpu-stats.js'
import {
  type GrpcClassifier,
  type ModelStats,
  readCertificateExpiry,
  readModelStats,
  readServedTotals,
} from '../../core/monitoring/metric-readers.js'
import { CpuMeter, eventLoopLag } from '../../core/monitoring/process-stats.js'
import { type ServerStatsReport, serverStats } from '../../core/monitoring/server-stats.js'
import type { HelixConfig } from '../../shared/config.js'
import { UserError } from '../../shared/errors.js'
import { type GrpcContext, httpEquivalent } from '../calls.js'
import { loadProtos } from '../protos.js'

export const MONITORING_SERVICE = '/helix.monitoring.v1.MonitoringService'

/** What the monitoring service reads. */
export interface MonitoringDeps {
  service: ModelService
  identity?: Identity
  metrics?: HelixMetrics
  /** helix.yaml as the daemon runs it: tls.warn_days for the certificate alerts, and GetConfig. */
  config?: HelixConfig
  /** What `helix serve` resolved from helix.yaml, the environment and flags, for GetConfig. */
  settings?: DaemonSettings
  /** How nvidia-smi is run for ListGpus and GetGpuStats (tests put a recorded-output stand-in on PATH). */
  nvidiaSmi?: NvidiaSmiOptions
}

/** helix.yaml's default tls.warn_days, for a server started without a configuration. */
const DEFAULT_CERT_WARN_DAYS = 30

/** Full method names of every streaming method the daemon serves: their duration is no latency. */
function streamingMethods(): Set<string> {
  const paths = new Set<string>()
  for (const node of Object.values(loadProtos().definition)) {
    for (const method of Object.values(node as Record<string, unknown>)) {
      const m = method as { path?: unknown; requestStream?: boolean; responseStream?: boolean }
      if (typeof m?.path === 'string' && (m.requestStream || m.responseStream)) paths.add(m.path)
    }
  }
  return paths
}

/** gRPC status names as the core's readers need them: which stand for a 5xx, which methods stream. */
export function grpcClassifier(): GrpcClassifier {
  const streams = streamingMethods()
  return {
    isServerError: (code) => httpEquivalent(status[code as keyof typeof status] as status) >= 500,
    isStream: (method) => streams.has(method),
  }
}

/**
 * The readers one monitoring service shares between its calls: the start time, the CPU meter of unary
 * calls, the alert window and the GPU sampler.
 */
export class MonitoringSources {
  readonly startedAt = new Date()
  readonly metrics: HelixMetrics
  readonly grpc = grpcClassifier()
  readonly gpus: GpuSampler
  private readonly cpu = new CpuMeter()
  private readonly served = new ServedWindow(this.startedAt.getTime())

  constructor(
    readonly deps: MonitoringDeps,
    private readonly context: GrpcContext,
  ) {
    // Nothing counted is an honest answer when the server runs without metrics (a test of the face).
    this.metrics = deps.metrics ?? new HelixMetrics(deps.service, { defaultMetrics: false })
    this.gpus = new GpuSampler(deps.nvidiaSmi)
    // Starts the lag monitor now, so the first GetServerStats has a minute of history soon.
    eventLoopLag()
  }

  get config(): HelixConfig | undefined {
    return this.deps.config ?? this.deps.identity?.deps.config
  }

  get draining(): boolean {
    return this.context.streams.isDraining
  }

  /** The identity layer, or AUTH_DISABLED naming what needs it. */
  identity(what: string): Identity {
    if (this.deps.identity) return this.deps.identity
    throw new UserError('AUTH_DISABLED', `${what} need authentication, which is off on this server.`, {
      hint: 'Turn it on (auth.enabled: true in helix.yaml, without --no-auth) and restart the daemon.',
    })
  }

  discoverGpus() {
    return discoverGpus(this.deps.nvidiaSmi)
  }

  serverStats(cpu: CpuMeter = this.cpu): Promise<ServerStatsReport> {
    return serverStats({
      service: this.deps.service,
      metrics: this.metrics,
      grpc: this.grpc,
      startedAt: this.startedAt,
      cpu,
      openStreams: this.context.streams.count,
      draining: this.draining,
    })
  }

  modelStats(filter: { name?: string; version?: string } = {}): Promise<ModelStats[]> {
    return readModelStats(this.metrics, this.deps.service.index(), filter)
  }

  async alerts(): Promise<Alert[]> {
    const [certificates, totals] = await Promise.all([
      readCertificateExpiry(this.metrics),
      readServedTotals(this.metrics, this.grpc),
    ])
    const { served, windowSeconds } = this.served.advance(totals)
    return evaluateAlerts({
      models: this.deps.service.index(),
      certificates,
      certWarnDays: this.config?.tls.warn_days ?? DEFAULT_CERT_WARN_DAYS,
      served,
      windowSeconds,
      draining: this.draining,
    })
  }
}
