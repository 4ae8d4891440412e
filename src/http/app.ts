import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { SecureServerOptions } from 'node:http2'
import type { ServerOptions as HttpsServerOptions } from 'node:https'
import websocket from '@fastify/websocket'
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyServerOptions,
  LogController,
} from 'fastify'
import type { ModelService } from '../core/infer/types.js'
import { HelixMetrics } from '../core/metrics.js'
import { REALTIME_CLOSE } from '../shared/realtime-protocol.js'
import { openSocketAuth } from './auth/socket-auth.js'
import { authPlugin, type HttpAuth } from './plugins/auth.js'
import { bodyParsersPlugin } from './plugins/body-parsers.js'
import { errorsPlugin } from './plugins/errors.js'
import { metricsPlugin } from './plugins/metrics.js'
import { type RequestLogPolicy, requestLogPlugin } from './plugins/request-log.js'
import { securityPlugin } from './plugins/security.js'
import { tracingPlugin } from './plugins/tracing.js'
import { DEFAULT_REALTIME_SETTINGS, type RealtimeSettings } from './realtime/settings.js'
import { generateRoutes } from './routes/generate.js'
import { healthRoutes } from './routes/health.js'
import { inferRoutes } from './routes/infer.js'
import { modelRoutes } from './routes/models.js'
import { openaiRoutes } from './routes/openai.js'
import { opsRoutes } from './routes/ops.js'
import { realtimeRoutes } from './routes/realtime.js'
import { repositoryRoutes } from './routes/repository.js'

export interface BuildAppOptions {
  /** The inference core the routes call. */
  service: ModelService
  /** Proxies whose X-Forwarded-For is believed for request.ip (server.trust_proxy). */
  trustProxy?: string[]
  /** Largest request body in bytes (config.server.body_limit); 64 MiB by default. */
  bodyLimit?: number
  /**
   * How long a client may take to send the headers and the whole request (server.headers_timeout_s,
   * server.request_timeout_s); 20 s and 300 s by default.
   */
  timeouts?: { headersMs: number; requestMs: number }
  /** pino options, or false for no logs (tests). */
  logger?: FastifyServerOptions['logger']
  /** A ready pino logger shared with the inference core (wins over `logger`). */
  loggerInstance?: FastifyBaseLogger
  /** HTTPS (and mTLS) options; plain HTTP when absent. */
  https?: HttpsServerOptions
  /** Authentication (httpAuthentication of the identity layer); without it every request is allowed (route tests). */
  auth?: HttpAuth
  /** Metrics registry; a fresh one by default. */
  metrics?: HelixMetrics
  /** Which answered requests get a log line; errors only by default. */
  requestLog?: RequestLogPolicy
  /** Limits and timers of GET /v1/realtime (helix.yaml's realtime:); the defaults for what is absent. */
  realtime?: Partial<RealtimeSettings>
}

/** Never log bodies, credentials or cookies (the request serializer logs no headers; this is the guard). */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
]

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** Takes the caller's X-Request-Id when it is a sane token, else a fresh UUID. */
export function requestId(request: IncomingMessage): string {
  const given = request.headers['x-request-id']
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
}

/**
 * Builds the daemon's Fastify app without listening. Plugins register in order: body parsing →
 * app plugins (errors, metrics, security headers, auth) → routes.
 */
export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const bodyLimit = options.bodyLimit ?? 64 * 1024 * 1024
  // Node checks these deadlines every connectionsCheckingInterval (30 s by default): often enough
  // that a slow client is cut off close to its deadline.
  const headersTimeout = options.timeouts?.headersMs ?? 20_000
  const clientTimeouts = {
    headersTimeout,
    connectionsCheckingInterval: Math.max(250, Math.min(5000, Math.floor(headersTimeout / 4))),
  }
  const app = Fastify({
    ...(options.loggerInstance
      ? { loggerInstance: options.loggerInstance }
      : { logger: options.logger ?? false }),
    genReqId: requestId,
    // Two info lines per request ("incoming request", "request completed") cost throughput and
    // duplicate nginx's access log: request-log.ts writes at most one, by policy.
    logController: new LogController({ disableRequestLogging: true }),
    ...(options.trustProxy?.length ? { trustProxy: options.trustProxy } : {}),
    requestIdHeader: false,
    bodyLimit,
    // Draining: idle keep-alive sockets close at once, in-flight requests finish. A request that was
    // already on its way over a kept-alive connection when the drain began (a proxy's pool) is served
    // too, answered with Connection: close (server.ts): a 503 there would fail it, since a proxy does
    // not resend a POST. Nothing the requests need is closed before the drain ends.
    forceCloseConnections: 'idle',
    return503OnClosing: false,
    requestTimeout: options.timeouts?.requestMs ?? 300_000,
    http: clientTimeouts as never,
    ...(options.https ? { https: { ...options.https, ...clientTimeouts } as SecureServerOptions } : {}),
  }) as unknown as FastifyInstance

  // The database and Redis are opened by the identity layer (src/core/identity) before the app is built.
  const realtime = { ...DEFAULT_REALTIME_SETTINGS, ...options.realtime }
  // First, so its onRoute hook sees every route (an upgrade to any other route is closed).
  await app.register(websocket, {
    options: { maxPayload: realtime.maxMessageBytes },
    preClose(done) {
      const sockets = app.websocketServer
      for (const client of sockets.clients) client.close(REALTIME_CLOSE.goingAway, 'server shutting down')
      // A client that does not read cannot take the close frame: it is cut off instead.
      const force = setTimeout(() => {
        for (const client of sockets.clients) client.terminate()
      }, 2000)
      sockets.close(() => {
        clearTimeout(force)
        done()
      })
    },
  })
  await app.register(bodyParsersPlugin, { bodyLimit })
  await app.register(errorsPlugin)
  await app.register(tracingPlugin)
  await app.register(requestLogPlugin, { policy: options.requestLog })
  await app.register(metricsPlugin, { metrics: options.metrics ?? new HelixMetrics(options.service) })
  await app.register(securityPlugin)
  await app.register(authPlugin, { auth: options.auth })

  const { service } = options
  await app.register(healthRoutes, { service })
  await app.register(modelRoutes, { service })
  await app.register(inferRoutes, { service })
  await app.register(generateRoutes, { service })
  await app.register(openaiRoutes, { service })
  await app.register(repositoryRoutes, { service })
  await app.register(opsRoutes)
  // With an identity layer that has no socket face, nothing would check the auth frame: no route then.
  const socketAuth = options.auth ? options.auth.socket : openSocketAuth
  if (socketAuth) await app.register(realtimeRoutes, { service, auth: socketAuth, settings: realtime })
  return app
}
