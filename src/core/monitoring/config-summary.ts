import type { HelixConfig } from '../../shared/config.js'

/** What `helix serve` resolved from helix.yaml, the environment and its flags. */
export interface DaemonSettings {
  host: string
  /** The REST port asked for (0: any free port). */
  port: number
  /** The gRPC port asked for; absent when the gRPC face is off. */
  grpcPort?: number
  grpcMaxMessageBytes?: number
  tls: boolean
  mtls: boolean
  bodyLimitBytes: number
  drainTimeoutMs: number
  logLevel: string
  logFormat: string
  /** Absolute path of the model repository. */
  modelsDir: string
}

/**
 * The settings a running daemon uses, without secrets: database, Redis and SMTP URLs (which carry
 * passwords) are reported only as set or not, and no key material appears.
 */
export interface ConfigSummary {
  domain: string
  server: {
    host: string
    port: number
    grpcPort: number | null
    grpcMaxMessageBytes: number
    tls: boolean
    mtls: boolean
    bodyLimitBytes: number
    drainTimeoutMs: number | null
    trustProxy: string[]
  }
  auth: {
    /** Whether callers must authenticate (false with auth.enabled: false or --no-auth). */
    enabled: boolean
    allowRegistration: boolean
    requireEmailVerification: boolean
    publicRoutes: string[]
    accessTokenTtlSeconds: number
    refreshTokenTtlSeconds: number
    apiKeyGraceSeconds: number
  }
  rateLimit: {
    perKeyPerMin: number
    perIpPerMin: number
    authPerIpPerMin: number
    /** Limits held in Redis, shared by every replica (else per process). */
    shared: boolean
  }
  models: {
    repository: string
    device: string
    load: string
    lazyLoadTimeoutMs: number
    memoryBudget: string | null
    workerPoolSize: number
    loadConcurrency: number
  }
  database: { external: boolean; poolSize: number; statementTimeoutMs: number }
  tls: { warnDays: number; serverDays: number; clientDays: number }
  logging: { level: string | null; format: string; requests: string; sampleRate: number }
  mail: { smtp: boolean; from: string }
}

export function configSummary(
  config: HelixConfig,
  options: { settings?: DaemonSettings; authEnabled: boolean },
): ConfigSummary {
  const s = options.settings
  const server = config.server
  return {
    domain: config.domain,
    server: {
      host: s?.host ?? server.host,
      port: s?.port ?? server.port,
      grpcPort: s ? (s.grpcPort ?? null) : server.grpc.enabled ? (server.grpc.port ?? null) : null,
      grpcMaxMessageBytes: s?.grpcMaxMessageBytes ?? server.grpc.max_message_bytes,
      tls: s?.tls ?? (server.tls || server.mtls),
      mtls: s?.mtls ?? server.mtls,
      bodyLimitBytes: s?.bodyLimitBytes ?? server.body_limit,
      drainTimeoutMs: s?.drainTimeoutMs ?? null,
      trustProxy: server.trust_proxy,
    },
    auth: {
      enabled: options.authEnabled,
      allowRegistration: config.auth.allow_registration,
      requireEmailVerification: config.auth.require_email_verification,
      publicRoutes: config.auth.public_routes,
      accessTokenTtlSeconds: config.jwt.access_ttl_s,
      refreshTokenTtlSeconds: config.auth.refresh_ttl_s,
      apiKeyGraceSeconds: config.auth.api_key_grace_s,
    },
    rateLimit: {
      perKeyPerMin: config.rate_limit.per_key_per_min,
      perIpPerMin: config.rate_limit.per_ip_per_min,
      authPerIpPerMin: config.rate_limit.auth_per_ip_per_min,
      shared: Boolean(config.redis.url),
    },
    models: {
      repository: s?.modelsDir ?? config.models.repository,
      device: config.models.device,
      load: config.models.load,
      lazyLoadTimeoutMs: config.models.lazy_load_timeout_ms,
      memoryBudget: config.models.memory_budget === undefined ? null : String(config.models.memory_budget),
      workerPoolSize: config.models.worker_pool_size,
      loadConcurrency: config.models.load_concurrency,
    },
    database: {
      external: Boolean(config.database.url),
      poolSize: config.database.pool_size,
      statementTimeoutMs: config.database.statement_timeout_ms,
    },
    tls: {
      warnDays: config.tls.warn_days,
      serverDays: config.tls.server_days,
      clientDays: config.tls.client_days,
    },
    logging: {
      level: s?.logLevel ?? null,
      format: s?.logFormat ?? config.logging.format,
      requests: config.logging.requests,
      sampleRate: config.logging.sample_rate,
    },
    mail: { smtp: Boolean(config.mail.smtp_url), from: config.mail.from },
  }
}
