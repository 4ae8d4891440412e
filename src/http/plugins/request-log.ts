import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { RequestLogMode } from '../../shared/config-schema.js'

/** Which answered requests get a log line (helix.yaml logging.requests and logging.sample_rate). */
export interface RequestLogPolicy {
  mode: RequestLogMode
  /** Share (0 to 1) of the requests below 400 logged under mode 'sample'. */
  sampleRate: number
}

/** nginx keeps the access log; the daemon logs what an operator must see. */
export const DEFAULT_REQUEST_LOG: RequestLogPolicy = { mode: 'errors', sampleRate: 0.01 }

/** Why a request failed, as the error handler answered it; the request's log line carries it. */
export interface RequestFailure {
  code: string
  message: string
  /** The thrown error, kept for server errors only (its stack is what an operator needs). */
  err?: unknown
}

const failures = new WeakMap<FastifyRequest, RequestFailure>()

/** Called by the error handler, so the one line logged per request says why it failed. */
export function recordFailure(request: FastifyRequest, failure: RequestFailure): void {
  failures.set(request, failure)
}

/**
 * The level of an answered request's log line, or undefined for none. Server errors are always
 * logged; client errors (4xx are the caller's to fix) at info unless mode is off; the rest only under
 * 'all', or a `draw() < sampleRate` share under 'sample'.
 */
export function requestLogLevel(
  status: number,
  policy: RequestLogPolicy,
  draw: () => number = Math.random,
): 'error' | 'info' | undefined {
  if (status >= 500) return 'error'
  if (status >= 400) return policy.mode === 'off' ? undefined : 'info'
  if (policy.mode === 'all') return 'info'
  if (policy.mode === 'sample' && draw() < policy.sampleRate) return 'info'
  return undefined
}

/**
 * At most one line per answered request, after it is sent (Fastify's own two lines per request are
 * turned off in buildApp): method, URL, status and time, never headers or bodies.
 */
export const requestLogPlugin = fp(
  async (app: FastifyInstance, options: { policy?: RequestLogPolicy; draw?: () => number }) => {
    const policy = options.policy ?? DEFAULT_REQUEST_LOG
    const draw = options.draw ?? Math.random
    // A callback hook: most answers log nothing, and an async hook would cost a promise each.
    app.addHook('onResponse', (request, reply, done) => {
      const level = requestLogLevel(reply.statusCode, policy, draw)
      if (level !== undefined) {
        const failure = failures.get(request)
        request.log[level](
          {
            req: { method: request.method, url: request.url, remoteAddress: request.ip },
            res: { statusCode: reply.statusCode },
            responseTime: Math.round(reply.elapsedTime * 10) / 10,
            ...(failure ? { code: failure.code, error: failure.message } : {}),
            ...(failure?.err ? { err: failure.err } : {}),
          },
          'request completed',
        )
      }
      done()
    })
  },
  { name: 'helix-request-log', fastify: '5.x' },
)
