import { type ServerUnaryCall, status, type UntypedServiceImplementation } from '@grpc/grpc-js'
import { permitted } from '../../core/identity/access.js'
import { missingCredentials } from '../../core/identity/auth-errors.js'
import type { Principal } from '../../core/identity/principal.js'
import { recentAuditEntries } from '../../core/monitoring/audit-entries.js'
import { configSummary } from '../../core/monitoring/config-summary.js'
import { rateLimitStatus } from '../../core/monitoring/rate-limit-status.js'
import { usageReport } from '../../core/monitoring/usage-report.js'
import { UserError } from '../../shared/errors.js'
import { type CallInfo, type GrpcAccess, peerAddress } from '../call-auth.js'
import { type GrpcContext, unary } from '../calls.js'
import { toServiceError } from '../status.js'
import * as wire from './messages.js'
import { recordCall } from './record.js'
import { MONITORING_SERVICE, type MonitoringDeps, MonitoringSources } from './sources.js'
import { watchStats } from './watch-stats.js'

export type { MonitoringDeps } from './sources.js'

const MONITOR: GrpcAccess = { scope: 'monitor' }
const ADMIN: GrpcAccess = { scope: 'admin' }

interface ModelFilter {
  name?: string
  version?: string
  ready_only?: boolean
}

interface UsageRequest {
  since?: string
  until?: string
  key_id?: string
  user_id?: string
  include_hours?: boolean
  include_revoked?: boolean
}

interface AuditRequest {
  action_prefix?: string
  since?: string
  actor_user_id?: string
  limit?: number
}

/**
 * helix.monitoring.v1.MonitoringService over what the daemon knows: the model service, the metrics
 * registry, nvidia-smi, and (with authentication on) the identity layer's usage, audit log and limits.
 * Every call is authorized, counted in the request log and usage counters like any other call, and
 * changes nothing.
 */
export function monitoringService(deps: MonitoringDeps, context: GrpcContext): UntypedServiceImplementation {
  const { auth } = context
  const { service } = deps
  const sources = new MonitoringSources(deps, context)

  /** A unary method: authorize, answer, record. */
  const method = <Req>(
    name: string,
    access: GrpcAccess,
    handle: (request: Req, principal: Principal | undefined, call: CallInfo) => unknown | Promise<unknown>,
  ) => {
    const path = `${MONITORING_SERVICE}/${name}`
    return unary<Req, unknown>(context, path, async (call: ServerUnaryCall<Req, unknown>) => {
      const started = performance.now()
      let principal: Principal | undefined
      let code = status.OK
      try {
        principal = await auth.authorize(call, access)
        return await handle(call.request, principal, call)
      } catch (err) {
        code = toServiceError(err).code
        throw err
      } finally {
        recordCall(auth, call, principal, path, code, started)
      }
    })
  }

  return {
    GetHealth: method('GetHealth', MONITOR, () => {
      const draining = sources.draining
      return {
        live: true,
        ready: service.isReady() && !draining,
        draining,
        models: service.index().map((e) => ({
          name: e.name,
          version: e.version,
          state: e.state,
          ready: e.state === 'READY',
          reason: e.reason ?? '',
        })),
        checked_at: wire.rfc3339(new Date()),
      }
    }),

    ListGpus: method('ListGpus', MONITOR, async () =>
      wire.gpuList(await sources.discoverGpus(), service.index()),
    ),

    GetGpuStats: method('GetGpuStats', MONITOR, async () => wire.gpuStats(await sources.gpus.sample())),

    ListModels: method<ModelFilter>('ListModels', MONITOR, (request) => {
      // An unknown name is NOT_FOUND (MODEL_NOT_FOUND), as the inference service answers it.
      if (request.name) service.modelReady(request.name)
      const rows = service
        .index({ readyOnly: request.ready_only === true })
        .filter((e) => !request.name || e.name === request.name)
      return { models: rows.map(wire.modelVersion) }
    }),

    GetModelStats: method<ModelFilter>('GetModelStats', MONITOR, async (request) => {
      const name = request.name || undefined
      const version = request.version || undefined
      if (version !== undefined && name === undefined)
        throw new UserError('INVALID_INPUT', 'version needs name: give the model the version belongs to.')
      if (name !== undefined) service.modelReady(name, version)
      const models = await sources.modelStats({
        ...(name ? { name } : {}),
        ...(version ? { version } : {}),
      })
      return { models: models.map(wire.modelStats), collected_at: wire.rfc3339(new Date()) }
    }),

    GetServerStats: method('GetServerStats', MONITOR, async () =>
      wire.serverStats(await sources.serverStats()),
    ),

    GetUsage: method<UsageRequest>('GetUsage', MONITOR, async (request, principal) => {
      const identity = sources.identity('Usage counters')
      const since = wire.parseTime(request.since, 'since')
      const until = wire.parseTime(request.until, 'until')
      const report = await usageReport(
        identity.deps,
        {
          // Without a principal authentication is off in helix.yaml: every caller may read everything.
          admin: !principal || permitted(principal, { scope: 'admin' }),
          ...(principal?.userId ? { userId: principal.userId } : {}),
          ...(principal?.keyId ? { keyId: principal.keyId } : {}),
        },
        {
          ...(since ? { since } : {}),
          ...(until ? { until } : {}),
          ...(request.key_id ? { keyId: request.key_id } : {}),
          ...(request.user_id ? { userId: request.user_id } : {}),
          includeHours: request.include_hours === true,
          includeRevoked: request.include_revoked === true,
        },
      )
      return wire.usage(report)
    }),

    ListAuditEntries: method<AuditRequest>('ListAuditEntries', ADMIN, async (request) => {
      const identity = sources.identity('Audit entries')
      const since = wire.parseTime(request.since, 'since')
      const rows = await recentAuditEntries(identity.deps, {
        ...(request.action_prefix ? { actionPrefix: request.action_prefix } : {}),
        ...(since ? { since } : {}),
        ...(request.actor_user_id ? { actorUserId: request.actor_user_id } : {}),
        ...(request.limit ? { limit: request.limit } : {}),
      })
      return { entries: rows.map(wire.auditEntry) }
    }),

    ListActiveAlerts: method('ListActiveAlerts', MONITOR, async () => ({
      alerts: (await sources.alerts()).map(wire.alert),
      evaluated_at: wire.rfc3339(new Date()),
    })),

    WatchStats: watchStats(sources, context),

    GetRateLimits: method('GetRateLimits', 'signed-in', async (_request, principal, call) => {
      const identity = sources.identity('Rate limits and quotas')
      if (!principal) throw missingCredentials()
      const limits = await rateLimitStatus(
        identity.deps,
        identity.limiter,
        identity.deps.config,
        principal,
        peerAddress(call.getPeer()),
      )
      return {
        subject: limits.subject,
        policies: limits.policies.map((p) => ({
          name: p.name,
          limit: p.limit,
          window_seconds: p.windowSeconds,
          remaining: p.remaining,
          reset_seconds: p.resetSeconds,
        })),
        ...(limits.quota ? { quota: wire.quota(limits.quota) } : {}),
      }
    }),

    GetConfig: method('GetConfig', MONITOR, () => {
      const config = sources.config
      if (!config)
        throw new UserError('NOT_FOUND', 'This server was started without helix.yaml settings to report.')
      return wire.config(
        configSummary(config, {
          ...(deps.settings ? { settings: deps.settings } : {}),
          authEnabled: deps.identity !== undefined && config.auth.enabled,
        }),
      )
    }),
  }
}
