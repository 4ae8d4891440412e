import type { FastifyError, FastifyInstance } from 'fastify'
import { isHelixError } from '../../shared/errors.js'
import { globalPlugin } from './global-plugin.js'
import { recordFailure } from './request-log.js'

/**
 * The one table from error codes to HTTP statuses (HelixError codes from the inference core and the
 * protocol codec, Fastify's own codes for parsing). Every error answer is {"error": "message"}.
 */
export const STATUS_BY_CODE: Readonly<Record<string, number>> = {
  INVALID_INPUT: 400,
  MALFORMED_JSON: 400,
  FST_ERR_CTP_EMPTY_JSON_BODY: 400,
  FST_ERR_CTP_INVALID_JSON_BODY: 400,
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 400,
  FST_ERR_VALIDATION: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  MODEL_NOT_FOUND: 404,
  // Identity (issue 6): unknown or foreign API keys/users, taken e-mails, shared dependencies.
  NOT_FOUND: 404,
  USER_EXISTS: 409,
  MAIL_FAILED: 502,
  RATE_LIMITER_UNAVAILABLE: 503,
  VERSION_NOT_FOUND: 404,
  BODY_TOO_LARGE: 413,
  FST_ERR_CTP_BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 415,
  QUEUE_FULL: 429,
  RATE_LIMITED: 429,
  CANCELLED: 499,
  BACKEND_FAILED: 500,
  MODEL_LOAD_FAILED: 500,
  MODEL_NOT_READY: 503,
  INFER_TIMEOUT: 504,
}

/** Seconds a client should wait after a 429 when the core does not say. */
const DEFAULT_RETRY_AFTER_S = 1

export interface ErrorAnswer {
  status: number
  code: string
  message: string
  retryAfter?: number
}

/** Classifies anything thrown in a request into the status, code and message the client sees. */
export function errorAnswer(err: unknown): ErrorAnswer {
  if (isHelixError(err)) {
    const status = STATUS_BY_CODE[err.code] ?? (err.exitCode === 2 ? 400 : 500)
    const retry = err.details?.retryAfterSeconds
    return {
      status,
      code: err.code,
      message: status >= 500 && !(err.code in STATUS_BY_CODE) ? 'Internal server error.' : err.message,
      ...(status === 429
        ? { retryAfter: typeof retry === 'number' ? Math.max(1, Math.ceil(retry)) : DEFAULT_RETRY_AFTER_S }
        : {}),
    }
  }
  const e = err as Partial<FastifyError>
  if (e?.validation) {
    const first = e.validation[0]
    const allowed = (first?.params as { allowedValues?: unknown[] } | undefined)?.allowedValues
    const message = allowed ? `${e.message} (${allowed.join(', ')})` : (e.message ?? 'Invalid request.')
    return { status: 400, code: 'INVALID_INPUT', message }
  }
  const code = typeof e?.code === 'string' ? e.code : 'INTERNAL'
  const status =
    STATUS_BY_CODE[code] ?? (e?.statusCode && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500)
  return { status, code, message: status >= 500 ? 'Internal server error.' : (e?.message ?? 'Bad request.') }
}

/** Error mapping and the 404 answer for unknown routes; the daemon answers every input and keeps serving. */
export const errorsPlugin = globalPlugin('helix-errors', async (app: FastifyInstance) => {
  app.setErrorHandler((err, request, reply) => {
    const answer = errorAnswer(err)
    // The request's one log line (request-log.ts) says why it failed; server errors keep the error.
    recordFailure(request, {
      code: answer.code,
      message: answer.message,
      ...(answer.status >= 500 ? { err } : {}),
    })
    if (answer.retryAfter !== undefined) reply.header('retry-after', String(answer.retryAfter))
    reply.code(answer.status).type('application/json; charset=utf-8').send({ error: answer.message })
  })
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({ error: `No route ${request.method} ${request.url.split('?')[0]}.` })
  })
})
