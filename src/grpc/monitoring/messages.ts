import type { GpuDiscovery } from '../../core/gpu/nvidia-smi.js'
import type { ModelIndexEntry } from '../../core/infer/types.js'
import type { Alert } from '../../core/monitoring/alerts.js'
import type { ConfigSummary } from '../../core/monitoring/config-summary.js'
import type { GpuStatsSample } from '../../core/monitoring/gpu-stats.js'
import type { HistogramSummary } from '../../core/monitoring/histogram.js'
import type { ModelStats, VersionStats } from '../../core/monitoring/metric-readers.js'
import type { ServerStatsReport } from '../../core/monitoring/server-stats.js'
import type { QuotaState, UsageReport } from '../../core/monitoring/usage-report.js'
import { UserError } from '../../shared/errors.js'
import type { AuditRow } from '../../state/db/repositories/audit.js'
import type { UsageTotals } from '../../state/db/repositories/usage.js'

/**
 * helix.monitoring.v1 messages from the core's reports: field names as in monitoring.proto, times as
 * RFC 3339 strings, absent values as proto3 defaults (empty string, 0) or unset optional fields.
 */

type Wire = Record<string, unknown>

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/

/** An RFC 3339 time from a request field; undefined for the empty string (the field left out). */
export function parseTime(text: string | undefined, field: string): Date | undefined {
  if (!text) return undefined
  const at = RFC3339.test(text) ? Date.parse(text) : Number.NaN
  if (!Number.isFinite(at)) {
    throw new UserError(
      'INVALID_INPUT',
      `${field} must be an RFC 3339 time such as 2025-01-31T12:00:00Z, got '${text}'.`,
    )
  }
  return new Date(at)
}

export const rfc3339 = (at: Date | null | undefined): string => (at ? at.toISOString() : '')

/** Optional proto3 fields are left unset for null (nvidia-smi's [N/A]). */
const optional = (name: string, value: number | null): Wire => (value === null ? {} : { [name]: value })

export function modelVersion(e: ModelIndexEntry): Wire {
  return {
    name: e.name,
    version: e.version,
    state: e.state,
    ready: e.state === 'READY',
    reason: e.reason ?? '',
    execution_provider: e.executionProvider ?? '',
    device: e.device ?? '',
    queue_depth: e.queueDepth ?? 0,
    queue_capacity: e.queueCapacity ?? 0,
    fallback_reason: e.fallbackReason ?? '',
  }
}

/** The GPUs discovery found, each with the ready model versions whose device is that GPU. */
export function gpuList(discovery: GpuDiscovery, index: readonly ModelIndexEntry[]): Wire {
  return {
    gpus: discovery.gpus.map((g) => ({
      index: g.index,
      uuid: g.uuid,
      name: g.name,
      memory_total_mib: g.memoryTotalMiB,
      memory_used_mib: g.memoryUsedMiB,
      memory_free_mib: g.memoryFreeMiB,
      ...optional('utilization_percent', g.utilizationPercent),
      models: index
        .filter((e) => e.state === 'READY' && e.device === `cuda:${g.index}`)
        .map((e) => `${e.name}:${e.version}`),
    })),
    reason: discovery.reason ?? '',
  }
}

export function histogram(h: HistogramSummary): Wire {
  return { ...h, buckets: h.buckets.map((b) => ({ le: b.le, count: b.count })) }
}

function versionStats(v: VersionStats): Wire {
  return {
    version: v.version,
    state: v.state ?? '',
    requests: v.requests,
    successes: v.successes,
    failures: v.failures,
    outcomes: v.outcomes,
    queue_seconds: histogram(v.queueSeconds),
    compute_seconds: histogram(v.computeSeconds),
  }
}

export function modelStats(m: ModelStats): Wire {
  return {
    name: m.name,
    requests: m.requests,
    successes: m.successes,
    failures: m.failures,
    outcomes: m.outcomes,
    versions: m.versions.map(versionStats),
    batch_size: histogram(m.batchSize),
  }
}

export function serverStats(s: ServerStatsReport): Wire {
  return {
    version: s.version,
    started_at: rfc3339(s.startedAt),
    uptime_seconds: s.uptimeSeconds,
    process_uptime_seconds: s.processUptimeSeconds,
    node_version: s.nodeVersion,
    pid: s.pid,
    memory: {
      rss_bytes: s.memory.rssBytes,
      heap_used_bytes: s.memory.heapUsedBytes,
      heap_total_bytes: s.memory.heapTotalBytes,
      external_bytes: s.memory.externalBytes,
      array_buffers_bytes: s.memory.arrayBuffersBytes,
    },
    cpu: {
      user_seconds: s.cpu.userSeconds,
      system_seconds: s.cpu.systemSeconds,
      percent: s.cpu.percent,
      cores: s.cpu.cores,
      load_average: s.cpu.loadAverage,
    },
    event_loop: {
      mean_ms: s.eventLoop.meanMs,
      p50_ms: s.eventLoop.p50Ms,
      p99_ms: s.eventLoop.p99Ms,
      max_ms: s.eventLoop.maxMs,
      window_seconds: s.eventLoop.windowSeconds,
    },
    queued_requests: s.queuedRequests,
    open_streams: s.openStreams,
    ready: s.ready,
    draining: s.draining,
    models_ready: s.modelsReady,
    model_versions: s.modelVersions,
    requests: s.requests.map((r) => ({
      protocol: r.protocol,
      requests: r.requests,
      failures: r.failures,
      server_errors: r.serverErrors,
    })),
    inferences: s.inferences,
  }
}

export function alert(a: Alert): Wire {
  return {
    name: a.name,
    severity: a.severity,
    summary: a.summary,
    description: a.description,
    labels: a.labels,
    value: a.value,
    threshold: a.threshold,
    window_seconds: a.windowSeconds,
  }
}

export function gpuStats(sample: GpuStatsSample): Wire {
  return {
    gpus: sample.gpus.map((g) => ({
      index: g.index,
      uuid: g.uuid,
      name: g.name,
      memory_total_mib: g.memoryTotalMiB,
      memory_used_mib: g.memoryUsedMiB,
      memory_free_mib: g.memoryFreeMiB,
      ...optional('utilization_gpu_percent', g.utilizationGpuPercent),
      ...optional('utilization_memory_percent', g.utilizationMemoryPercent),
      ...optional('temperature_celsius', g.temperatureCelsius),
      ...optional('power_draw_watts', g.powerDrawWatts),
      ...optional('power_limit_watts', g.powerLimitWatts),
      driver_version: g.driverVersion,
      pci_bus_id: g.pciBusId,
      compute_capability: g.computeCapability,
    })),
    reason: sample.reason ?? '',
    sampled_at: rfc3339(sample.sampledAt),
  }
}

export function quota(q: QuotaState | null): Wire | undefined {
  if (!q) return undefined
  return {
    period: q.period,
    requests_limit: q.requests ?? 0,
    items_limit: q.items ?? 0,
    used_requests: q.usedRequests,
    used_items: q.usedItems,
    resets_at: rfc3339(q.resetsAt),
  }
}

const counters = (u: UsageTotals): Wire => ({
  requests: u.requests,
  errors: u.errors,
  tokens: u.tokens,
  items: u.items,
})

export function usage(report: UsageReport): Wire {
  return {
    since: rfc3339(report.since),
    until: rfc3339(report.until),
    keys: report.keys.map((k) => ({
      key_id: k.keyId,
      name: k.name,
      user_id: k.userId ?? '',
      prefix: k.prefix,
      last4: k.last4,
      scopes: k.scopes,
      revoked: k.revoked,
      last_used_at: rfc3339(k.lastUsedAt),
      usage: counters(k.usage),
      ...(k.quota ? { quota: quota(k.quota) } : {}),
      hours: k.hours.map((h) => ({ hour: rfc3339(h.hour), usage: counters(h.usage) })),
    })),
    totals: counters(report.totals),
  }
}

export function auditEntry(row: AuditRow): Wire {
  return {
    id: row.id,
    at: rfc3339(row.at),
    actor: row.actor ?? '',
    actor_user_id: row.actor_user_id ?? '',
    action: row.action,
    target: row.target ?? '',
    ip: row.ip ?? '',
    details_json: JSON.stringify(row.details ?? {}),
  }
}

export function config(c: ConfigSummary): Wire {
  return {
    domain: c.domain,
    server: {
      host: c.server.host,
      port: c.server.port,
      grpc_port: c.server.grpcPort ?? 0,
      grpc_max_message_bytes: c.server.grpcMaxMessageBytes,
      tls: c.server.tls,
      mtls: c.server.mtls,
      body_limit_bytes: c.server.bodyLimitBytes,
      drain_timeout_ms: c.server.drainTimeoutMs ?? 0,
      trust_proxy: c.server.trustProxy,
    },
    auth: {
      enabled: c.auth.enabled,
      allow_registration: c.auth.allowRegistration,
      require_email_verification: c.auth.requireEmailVerification,
      public_routes: c.auth.publicRoutes,
      access_token_ttl_seconds: c.auth.accessTokenTtlSeconds,
      refresh_token_ttl_seconds: c.auth.refreshTokenTtlSeconds,
      api_key_grace_seconds: c.auth.apiKeyGraceSeconds,
    },
    rate_limit: {
      per_key_per_min: c.rateLimit.perKeyPerMin,
      per_ip_per_min: c.rateLimit.perIpPerMin,
      auth_per_ip_per_min: c.rateLimit.authPerIpPerMin,
      shared: c.rateLimit.shared,
    },
    models: {
      repository: c.models.repository,
      device: c.models.device,
      load: c.models.load,
      lazy_load_timeout_ms: c.models.lazyLoadTimeoutMs,
      memory_budget: c.models.memoryBudget ?? '',
      worker_pool_size: c.models.workerPoolSize,
      load_concurrency: c.models.loadConcurrency,
    },
    database: {
      external: c.database.external,
      pool_size: c.database.poolSize,
      statement_timeout_ms: c.database.statementTimeoutMs,
    },
    tls: { warn_days: c.tls.warnDays, server_days: c.tls.serverDays, client_days: c.tls.clientDays },
    logging: {
      level: c.logging.level ?? '',
      format: c.logging.format,
      requests: c.logging.requests,
      sample_rate: c.logging.sampleRate,
    },
    mail: { smtp: c.mail.smtp, from: c.mail.from },
  }
}
