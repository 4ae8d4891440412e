import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ServerOptions as HttpsServerOptions } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import { isatty } from 'node:tty'
import type { FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { WorkerPool } from '../core/backends/worker-pool.js'
import { type Identity, openIdentity } from '../core/identity/identity.js'
import { parseMemorySize } from '../core/infer/memory-budget.js'
import { HelixModelService } from '../core/infer/model-service.js'
import type { ModelService } from '../core/infer/types.js'
import { RedisRateLimiter } from '../core/limits/redis-limiter.js'
import { HelixMetrics } from '../core/metrics.js'
import {
  registerDatabaseMetrics,
  registerJwtKeyMetrics,
  registerRedisMetrics,
} from '../core/monitoring/apm-metrics.js'
import { BusinessMetrics } from '../core/monitoring/business-metrics.js'
import { GpuMetrics } from '../core/monitoring/gpu-metrics.js'
import { startTracing } from '../core/tracing.js'
import type { HelixConfig } from '../shared/config.js'
import { Failure } from '../shared/errors.js'
import type { HelixHome } from '../shared/home.js'
import { PACKAGE_VERSION } from '../shared/package-version.js'
import { INTERMEDIATE_CIPHERS, MIN_TLS_VERSION, TLS_SECURE_OPTIONS } from '../shared/tls-profile.js'
import { listCertificates } from '../state/certs/list.js'
import {
  type DaemonRecord,
  daemonRecordFile,
  daemonUrl,
  removeDaemonRecord,
  writeDaemonRecord,
} from '../state/daemon-record.js'
import { runMigrations } from '../state/db/connect.js'
import { type BuildAppOptions, buildApp, REDACTED_PATHS } from './app.js'
import { httpAuthentication } from './identity.js'
import { LogOutput } from './log-output.js'
import { chooseLogFormat, LEVEL_VALUES, PrettyLogStream } from './pretty-log.js'
import { realtimeSettings } from './realtime/settings.js'
import { loadRuntimeConfig, type RuntimeConfig, type RuntimeTls, type ServeFlags } from './serve-config.js'

export function httpsOptions(tls: RuntimeTls): HttpsServerOptions {
  return {
    cert: tls.cert,
    key: tls.key,
    minVersion: MIN_TLS_VERSION,
    ciphers: INTERMEDIATE_CIPHERS,
    honorCipherOrder: false,
    secureOptions: TLS_SECURE_OPTIONS,
    ...(tls.mtls ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}),
  }
}

export interface Daemon {
  app: FastifyInstance
  /** The URL the daemon listens on (the real port when 0 was asked). */
  url: string
  /** Stops accepting, drains in-flight requests (bounded), then closes the model service. Idempotent. */
  shutdown(): Promise<void>
  /** Another face's drain (gRPC), run alongside the REST drain and finished before the models close. */
  addDrain(drain: (timeoutMs: number) => Promise<void>): void
}

function listeningUrl(config: RuntimeConfig, app: FastifyInstance): string {
  const { port } = app.server.address() as AddressInfo
  const host = config.host.includes(':') ? `[${config.host}]` : config.host
  return `${config.tls ? 'https' : 'http'}://${host}:${port}`
}

/** The daemon's logger (JSON lines, or pretty ones through PrettyLogStream); bodies are never logged and credentials are redacted. */
export function createLogger(config: Pick<RuntimeConfig, 'logLevel'>, destination?: pino.DestinationStream) {
  return pino(
    { level: config.logLevel, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } },
    destination,
  )
}

/**
 * Counts requests in flight per connection so a drain can close every connection the moment it has
 * nothing left to answer — including keep-alive sockets a client opened but never used, which
 * Node's closeIdleConnections() leaves open until the client gives up.
 */
function trackConnections(app: FastifyInstance, event: 'connection' | 'secureConnection') {
  const inFlight = new Map<Socket, number>()
  let draining = false
  app.server.on(event, (socket: Socket) => {
    inFlight.set(socket, 0)
    socket.once('close', () => inFlight.delete(socket))
  })
  app.server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const socket = request.socket
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1)
    // Tells a proxy's keep-alive pool not to send the next request on this connection, which is about
    // to close: a POST lost in that race is not resent by nginx (it may not be idempotent).
    if (draining) response.setHeader('connection', 'close')
    response.once('close', () => {
      const left = (inFlight.get(socket) ?? 1) - 1
      inFlight.set(socket, left)
      if (draining && left === 0) socket.end()
    })
  })
  // An upgraded socket (WebSocket /v1/realtime) is closed by its own shutdown hook with 1001, so the
  // client learns why; destroying it here would leave the client a bare 1006.
  app.server.on('upgrade', (request: IncomingMessage) => inFlight.delete(request.socket as Socket))
  const destroyIdle = () => {
    for (const [socket, count] of inFlight) if (count === 0) socket.destroy()
  }
  return {
    /**
     * Draining: every response from now on says Connection: close and its socket ends after it.
     * Idle keep-alive sockets close at once, or after `idleGraceMs`: a proxy's pool then retires
     * them itself (nginx closes upstream connections idle past its keepalive_timeout), where closing
     * one under it can lose the request it was sending. Node's own closing of idle connections when
     * the server closes is held back for that time.
     */
    closeWhenIdle(idleGraceMs: number) {
      draining = true
      if (idleGraceMs > 0) {
        app.server.closeIdleConnections = () => undefined
        setTimeout(destroyIdle, idleGraceMs).unref()
      }
      for (const [socket, count] of inFlight) {
        if (count === 0) {
          if (idleGraceMs === 0) socket.destroy()
          continue
        }
        // The response being answered on the socket (Node's own link; a Set of every in-flight
        // response kept each one alive through young-generation GCs and cost a fifth of the
        // full-stack throughput, bench/README.md).
        const response = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage
        if (response && !response.headersSent) response.setHeader('connection', 'close')
      }
    },
  }
}

/** Builds the app for a config and a model service and listens. */
export async function startDaemon(
  config: RuntimeConfig,
  service: ModelService,
  logger: pino.Logger = createLogger(config),
  extra: Partial<BuildAppOptions> = {},
): Promise<Daemon> {
  const app = await buildApp({
    ...extra,
    service,
    bodyLimit: config.bodyLimit,
    timeouts: config.timeouts,
    trustProxy: config.trustProxy,
    requestLog: config.requestLog,
    realtime: realtimeSettings(config.helix.realtime),
    loggerInstance: logger,
    ...(config.tls ? { https: httpsOptions(config.tls) } : {}),
  })
  const connections = trackConnections(app, config.tls ? 'secureConnection' : 'connection')
  await app.listen({ host: config.host, port: config.port })
  let closing: Promise<void> | undefined
  const drains: ((timeoutMs: number) => Promise<void>)[] = []
  const shutdown = () => {
    closing ??= (async () => {
      app.log.info({ drainTimeoutMs: config.drainTimeoutMs }, 'shutting down: draining in-flight requests')
      // Readiness turns false now (REST /v2/health/ready, gRPC health), while in-flight work finishes.
      service.beginDrain()
      const force = setTimeout(() => {
        app.log.warn('drain timeout reached: closing the remaining connections')
        app.server.closeAllConnections()
      }, config.drainTimeoutMs)
      connections.closeWhenIdle(Math.min(config.drainIdleGraceMs, config.drainTimeoutMs))
      try {
        await Promise.all([app.close(), ...drains.map((drain) => drain(config.drainTimeoutMs))])
      } finally {
        clearTimeout(force)
        app.log.info('connections drained: unloading models')
        await service.close()
        app.log.info('stopped')
      }
    })()
    return closing
  }
  return { app, url: listeningUrl(config, app), shutdown, addDrain: (drain) => drains.push(drain) }
}

/** notAfter of the helix certificates for the expiry gauge; none before `helix init` made them. */
async function certificateExpiries(
  home: HelixHome,
  config: HelixConfig,
): Promise<{ cert: string; notAfter: Date }[]> {
  try {
    const { certificates } = await listCertificates(home, config)
    return certificates.map((c) => ({ cert: c.role, notAfter: new Date(c.notAfter) }))
  } catch {
    return []
  }
}

/**
 * The identity layer (users, API keys, JWTs, rate limits) on the configured database, with pending
 * migrations applied first (safe when several daemons start at once). Authentication is on unless
 * auth.enabled is false or --no-auth is given, which is logged loudly.
 */
async function openAuthentication(
  home: HelixHome,
  config: RuntimeConfig,
  flags: ServeFlags,
  logger: pino.Logger,
): Promise<Identity | undefined> {
  if (flags.auth === false || !config.helix.auth.enabled) {
    logger.warn('authentication is OFF: every caller may use every route (--no-auth or auth.enabled: false)')
    return undefined
  }
  try {
    await runMigrations(home, config.helix, false)
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code === 'DB_UNREACHABLE' || code === 'DB_NOT_STARTED') {
      throw new Failure(
        code,
        `${(err as Error).message.replace(/\.$/, '')}; the daemon needs it to authenticate callers.`,
        {
          hint: 'Start the database with `helix db start` (or run everything with `helix up`); for a local experiment without auth, add --no-auth.',
          cause: err,
        },
      )
    }
    throw err
  }
  return openIdentity(home, config.helix, logger.child({ component: 'auth' }))
}

/** Resolves once SIGTERM or SIGINT has shut the daemon down. */
export function shutdownOnSignal(
  daemon: Daemon,
  signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'],
): Promise<NodeJS.Signals> {
  return new Promise((resolve, reject) => {
    let first: NodeJS.Signals | undefined
    // A second Ctrl-C (or a supervisor repeating SIGTERM) must not kill the process mid-drain: the
    // drain is bounded by drainTimeoutMs anyway, and an abrupt exit would skip closing the models.
    const onSignal = (signal: NodeJS.Signals) => {
      if (first) {
        daemon.app.log.warn({ signal }, 'already shutting down; waiting for in-flight requests (bounded)')
        return
      }
      first = signal
      daemon
        .shutdown()
        .then(() => resolve(signal), reject)
        .finally(() => {
          for (const s of signals) process.removeListener(s, onSignal)
        })
    }
    for (const s of signals) process.on(s, onSignal)
  })
}

/**
 * Writes data/daemon.json for the CLI commands that look for this daemon. Serving goes on without it
 * (a read-only helix directory): they fall back to the configured address.
 */
async function recordDaemon(
  home: HelixHome,
  config: RuntimeConfig,
  daemon: Daemon,
  logger: pino.Logger,
  faces: RunningFace[],
  auth: boolean,
): Promise<void> {
  const { port } = daemon.app.server.address() as AddressInfo
  const tls = config.tls !== undefined
  try {
    await writeDaemonRecord(home, {
      ...Object.assign({}, ...faces.map((f) => f.record)),
      pid: process.pid,
      url: daemonUrl({ host: config.host, port, tls }),
      host: config.host,
      port,
      tls,
      mtls: config.tls?.mtls ?? false,
      auth,
      started_at: new Date().toISOString(),
      version: PACKAGE_VERSION,
    })
  } catch (err) {
    logger.warn(
      { err },
      `cannot write ${daemonRecordFile(home)}; helix commands will look for the daemon at the configured address`,
    )
  }
}

export interface ServeResult {
  url: string
  /** The signal that stopped the daemon. */
  signal: NodeJS.Signals
}

/**
 * `helix serve`: validates the config, listens at once (live, not yet ready), loads the repository's
 * models, and runs until SIGTERM/SIGINT drains and stops it.
 */
/** What a face of the daemon other than REST (gRPC) gets to start on. */
export interface FaceContext {
  config: RuntimeConfig
  service: ModelService
  identity?: Identity
  metrics: HelixMetrics
  logger: pino.Logger
}

/** A started face: where it listens (for data/daemon.json and the start line) and how it drains. */
export interface RunningFace {
  /** e.g. "gRPC". */
  name: string
  /** How clients reach it, e.g. 127.0.0.1:8081. */
  address: string
  record: Partial<Pick<DaemonRecord, 'grpc'>>
  shutdown(timeoutMs: number): Promise<void>
}

/** Starts a face once REST listens; undefined when it is turned off. */
export type DaemonFace = (context: FaceContext) => Promise<RunningFace | undefined>

export interface ServeOptions {
  /** Called with the URL once the daemon listens (before the models finish loading), and the other faces. */
  onListening?: (url: string, faces: RunningFace[]) => void
  /** Called with the URL once the models are loaded and requests can be served. */
  onReady?: (url: string) => void
  /** Signals that drain and stop the daemon. */
  signals?: NodeJS.Signals[]
  /** The file descriptor log lines go to; stdout by default, stderr when stdout must hold one --json document. */
  logDestination?: number
  /** Pretty logs show only warnings and errors once the models are loaded (`helix up`'s summary stays in view). */
  quietAfterReady?: boolean
  /** Faces beside REST (the gRPC face, from ops/serve.ts), started after REST listens. */
  faces?: DaemonFace[]
}

/** How long the last log lines may take to be written when the daemon stops. */
const LOG_FLUSH_TIMEOUT_MS = 5000

export async function serve(
  home: HelixHome,
  flags: ServeFlags,
  options: ServeOptions = {},
): Promise<ServeResult> {
  const config = await loadRuntimeConfig(home, flags)
  const fd = options.logDestination ?? 1
  // A log output that fails (a full disk) never stops the daemon (log-output.ts).
  const output = new LogOutput(fd)
  const destination = output.stream
  const pretty =
    chooseLogFormat(config.logFormat, isatty(fd)) === 'pretty' ? new PrettyLogStream(destination) : undefined
  const logger = createLogger(config, pretty ?? destination)
  const models = config.helix.models
  const inferLogger = logger.child({ component: 'infer' })
  const workerPool = new WorkerPool({ size: models.worker_pool_size, logger: inferLogger })
  const service = new HelixModelService({
    repositoryDir: config.modelsDir,
    defaultDevice: models.device,
    logger: inferLogger,
    drainTimeoutMs: config.drainTimeoutMs,
    startupModels: models.load,
    lazyLoadTimeoutMs: models.lazy_load_timeout_ms,
    ...(models.memory_budget !== undefined
      ? { memoryBudgetBytes: parseMemorySize(models.memory_budget) }
      : {}),
    loadConcurrency: models.load_concurrency,
    isolation: models.isolation,
    pytorch: config.helix.backends.pytorch,
    workerPool,
  })
  const certificates = await certificateExpiries(home, config.helix)
  const tracing = await startTracing(config.helix.tracing, logger)
  const identity = await openAuthentication(home, config, flags, logger)
  const metrics = new HelixMetrics(service, { certificates: () => certificates })
  output.onWriteError = () => metrics.logWriteErrors.inc()
  output.onDropped = (lines) => metrics.logLinesDropped.inc(lines)
  // helix_gpu_*: nvidia-smi in the background, never delaying the start; nothing when there is no GPU.
  const gpuMetrics = new GpuMetrics(metrics.registry, () => service.index(), {
    intervalMs: config.helix.monitoring.gpu_interval_ms,
  })
  void gpuMetrics.start()
  const stopProbes: (() => void)[] = [() => gpuMetrics.stop()]
  if (identity) {
    stopProbes.push(registerDatabaseMetrics(metrics.registry, identity.deps.db))
    registerJwtKeyMetrics(metrics.registry, home, config.helix.jwt.rotate_after_days)
    if (identity.rateLimitStore instanceof RedisRateLimiter)
      stopProbes.push(registerRedisMetrics(metrics.registry, identity.rateLimitStore))
    identity.storeErrors.onStoreError = (policy, outcome) =>
      metrics.rateLimitStoreErrors.inc({ policy, outcome })
    identity.recorder.onDropped = (rows) => metrics.usageRowsDropped.inc(rows)
    const business = new BusinessMetrics(metrics.registry, config.helix.monitoring.max_key_series)
    business.attach(identity)
    metrics.onTextTokens = (keyId, model, kind, count) => business.tokens(keyId, model, kind, count)
  }
  let daemon: Daemon
  try {
    daemon = await startDaemon(config, service, logger, {
      metrics,
      ...(identity ? { auth: httpAuthentication(identity) } : {}),
    })
  } catch (err) {
    await identity?.close()
    throw err
  }
  const faces: RunningFace[] = []
  try {
    for (const start of options.faces ?? []) {
      const face = await start({ config, service, metrics, logger, ...(identity ? { identity } : {}) })
      if (!face) continue
      faces.push(face)
      daemon.addDrain((timeoutMs) => face.shutdown(timeoutMs))
    }
  } catch (err) {
    await daemon.shutdown()
    await identity?.close()
    throw err
  }
  await recordDaemon(home, config, daemon, logger, faces, identity !== undefined)
  const stopped = shutdownOnSignal(daemon, options.signals).finally(async () => {
    await removeDaemonRecord(home)
    await identity?.close()
  })
  options.onListening?.(daemon.url, faces)
  await service.start()
  logger.info({ ready: service.isReady() }, 'models loaded')
  options.onReady?.(daemon.url)
  if (pretty && options.quietAfterReady) pretty.minLevel = LEVEL_VALUES.warn
  const signal = await stopped
  for (const stop of stopProbes) stop()
  await workerPool.close()
  await tracing.shutdown()
  await output.flush(LOG_FLUSH_TIMEOUT_MS)
  return { url: daemon.url, signal }
}
