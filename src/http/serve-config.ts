import { readFile } from 'node:fs/promises'
import { repositoryDir } from '../core/infer/repository-location.js'
import { type HelixConfig, loadConfig } from '../shared/config.js'
import type { LogFormat } from '../shared/config-schema.js'
import { UserError } from '../shared/errors.js'
import type { HelixHome } from '../shared/home.js'
import { CERT_FILES, type CertFile, certPath } from '../state/certs/cert-files.js'
import type { RequestLogPolicy } from './plugins/request-log.js'

/** Flags of `helix serve`; each overrides helix.yaml and the environment. */
export interface ServeFlags {
  host?: string
  port?: number
  tls?: boolean
  mtls?: boolean
  logLevel?: string
  /** pretty or json log lines (logging.format; auto picks pretty on a terminal). */
  logFormat?: LogFormat
  /** false turns authentication off (auth.enabled in helix.yaml); only for local experiments. */
  auth?: boolean
  /** false turns the gRPC face off (server.grpc.enabled). */
  grpc?: boolean
  /** Port of the gRPC face (server.grpc.port). */
  grpcPort?: number
  /** Port of the loopback /metrics listener without credentials (server.metrics_port). */
  metricsPort?: number
}

/** The gRPC face's listening settings (server.grpc), resolved. */
export interface RuntimeGrpc {
  port: number
  maxMessageBytes: number
}

export interface RuntimeTls {
  cert: Buffer
  key: Buffer
  /** The helix CA; present with mTLS, which then requires and verifies client certificates. */
  ca?: Buffer
  mtls: boolean
}

/** Everything the daemon needs, resolved and validated once at start. */
export interface RuntimeConfig {
  host: string
  port: number
  tls?: RuntimeTls
  /** The gRPC face, unless server.grpc.enabled is false or --no-grpc was given. */
  grpc?: RuntimeGrpc
  bodyLimit: number
  /** server.headers_timeout_s and server.request_timeout_s, in milliseconds. */
  timeouts: { headersMs: number; requestMs: number }
  /** Proxies whose X-Forwarded-For is believed (server.trust_proxy); empty: none. */
  trustProxy: string[]
  /** How long shutdown waits for in-flight requests before closing their connections. */
  drainTimeoutMs: number
  /** How long a drain keeps idle keep-alive connections open for a proxy to retire (server.drain_idle_grace_s). */
  drainIdleGraceMs: number
  logLevel: LogLevel
  /** pretty, json, or auto: pretty when the log destination is a terminal. */
  logFormat: LogFormat
  /** Which answered requests get a log line (logging.requests, logging.sample_rate). */
  requestLog: RequestLogPolicy
  /** Absolute path of the model repository. */
  modelsDir: string
  /** The whole validated helix.yaml, for the parts the inference core reads. */
  helix: HelixConfig
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** In-flight requests get this long to finish on SIGTERM (Kubernetes' grace period is 30 s). */
export const DEFAULT_DRAIN_TIMEOUT_MS = 10_000

function logLevel(value: string | undefined): LogLevel {
  const level = value ?? 'info'
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UserError('CONFIG_INVALID', `Unknown log level '${level}'.`, {
      hint: `Use one of ${LOG_LEVELS.join(', ')}.`,
    })
  }
  return level as LogLevel
}

/**
 * server.drain_idle_grace_s behind a proxy: longer than the generated nginx's upstream
 * keepalive_timeout (4 s), so nginx closes its idle connections before the daemon would.
 */
export const DEFAULT_PROXIED_IDLE_GRACE_S = 5

function drainTimeout(value: string | undefined): number {
  if (value === undefined) return DEFAULT_DRAIN_TIMEOUT_MS
  const ms = Number(value)
  if (!Number.isInteger(ms) || ms < 0) {
    throw new UserError(
      'CONFIG_INVALID',
      `HELIX_DRAIN_TIMEOUT_MS must be a non-negative integer, got '${value}'.`,
      {
        hint: 'Set it to the milliseconds in-flight requests may take to finish on shutdown.',
      },
    )
  }
  return ms
}

/**
 * The gRPC port: the configured one, else the REST port + 1 (8081 next to 8080, as Triton pairs 8000
 * and 8001), else any free port when REST asked for one (0).
 */
export function grpcPort(restPort: number, configured: number | undefined): number {
  if (configured !== undefined) return configured
  if (restPort === 0) return 0
  if (restPort === 65535) {
    throw new UserError('CONFIG_INVALID', 'The REST port is 65535, so there is no port + 1 for gRPC.', {
      hint: 'Set server.grpc.port in helix.yaml (or --grpc-port), or turn gRPC off with --no-grpc.',
    })
  }
  return restPort + 1
}

async function readCertFile(home: HelixHome, file: CertFile): Promise<Buffer> {
  const path = certPath(home, file)
  try {
    return await readFile(path)
  } catch (err) {
    throw new UserError(
      'TLS_FILES_MISSING',
      `Cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}.`,
      {
        hint: 'Run `helix init` (or `helix certs issue server`) to create the certificates, or serve without --tls.',
      },
    )
  }
}

/**
 * Builds the daemon's config from helix.yaml < env (HELIX_HOST, HELIX_PORT, HELIX_LOG_LEVEL,
 * HELIX_LOG_FORMAT, HELIX_DRAIN_TIMEOUT_MS) < flags, validating everything (certificate files included) before
 * anything starts.
 */
export async function loadRuntimeConfig(
  home: HelixHome,
  flags: ServeFlags = {},
  env: NodeJS.ProcessEnv = process.env,
): Promise<RuntimeConfig> {
  const server: Record<string, unknown> = {}
  if (flags.host !== undefined) server.host = flags.host
  if (flags.port !== undefined) server.port = flags.port
  if (flags.tls !== undefined) server.tls = flags.tls
  if (flags.mtls !== undefined) server.mtls = flags.mtls
  if (flags.metricsPort !== undefined) server.metrics_port = flags.metricsPort
  const grpc: Record<string, unknown> = {}
  if (flags.grpc !== undefined) grpc.enabled = flags.grpc
  if (flags.grpcPort !== undefined) grpc.port = flags.grpcPort
  if (Object.keys(grpc).length) server.grpc = grpc
  const overrides: Record<string, unknown> = Object.keys(server).length ? { server } : {}
  if (flags.logFormat !== undefined) overrides.logging = { format: flags.logFormat }
  const helix = await loadConfig(home, overrides, env)
  const mtls = helix.server.mtls
  const tlsOn = helix.server.tls || mtls
  const tls: RuntimeTls | undefined = tlsOn
    ? {
        cert: await readCertFile(home, CERT_FILES.serverCert),
        key: await readCertFile(home, CERT_FILES.serverKey),
        ...(mtls ? { ca: await readCertFile(home, CERT_FILES.caCert) } : {}),
        mtls,
      }
    : undefined
  const grpcSettings = helix.server.grpc
  if (
    grpcSettings.enabled &&
    grpcSettings.port !== undefined &&
    grpcSettings.port !== 0 &&
    grpcSettings.port === helix.server.port
  ) {
    throw new UserError('CONFIG_INVALID', `REST and gRPC cannot share port ${helix.server.port}.`, {
      hint: 'Give gRPC its own port (server.grpc.port, --grpc-port), or turn it off with --no-grpc.',
    })
  }
  return {
    host: helix.server.host,
    port: helix.server.port,
    ...(tls ? { tls } : {}),
    ...(grpcSettings.enabled
      ? {
          grpc: {
            port: grpcPort(helix.server.port, grpcSettings.port),
            maxMessageBytes: grpcSettings.max_message_bytes,
          },
        }
      : {}),
    bodyLimit: helix.server.body_limit,
    timeouts: {
      // Node requires the headers timeout not to exceed the request timeout.
      headersMs: Math.min(helix.server.headers_timeout_s, helix.server.request_timeout_s) * 1000,
      requestMs: helix.server.request_timeout_s * 1000,
    },
    trustProxy: helix.server.trust_proxy,
    drainTimeoutMs: drainTimeout(env.HELIX_DRAIN_TIMEOUT_MS),
    drainIdleGraceMs:
      (helix.server.drain_idle_grace_s ??
        (helix.server.trust_proxy.length > 0 ? DEFAULT_PROXIED_IDLE_GRACE_S : 0)) * 1000,
    logLevel: logLevel(flags.logLevel ?? env.HELIX_LOG_LEVEL),
    modelsDir: repositoryDir(home, helix),
    logFormat: helix.logging.format,
    requestLog: { mode: helix.logging.requests, sampleRate: helix.logging.sample_rate },
    helix,
  }
}
