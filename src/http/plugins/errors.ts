import type { FastifyError, FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { ErrorKind } from '../../shared/error-codes.js'
import { isHelixError } from '../../shared/errors.js'
import { isOpenAIPath, openaiErrorBody } from '../openai/error-shape.js'
import { recordFailure } from './request-log.js'

/**
 * The one table from error kinds to HTTP statuses. Typed by ErrorKind, so a new kind cannot be left
 * unmapped; codes reach it through their kind (shared/error-codes.ts). Every error answer is
 * {"error": "message"}, except on the OpenAI-compatible /v1 paths, which answer OpenAI's
 * {"error": {"message", "type", "param", "code"}} with the same status; only 'internal' hides its message.
 */
export const HTTP_STATUS: Readonly<Record<ErrorKind, number>> = {
  invalid_input: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  overloaded: 429,
  cancelled: 499,
  model_failed: 500,
  internal: 500,
  dependency_failed: 502,
  unavailable: 503,
  timeout: 504,
}

/** Fastify's own error codes for what it parses before a route runs. */
const FASTIFY_STATUS: Readonly<Record<string, number>> = {
  FST_ERR_CTP_EMPTY_JSON_BODY: 400,
  FST_ERR_CTP_INVALID_JSON_BODY: 400,
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 400,
  FST_ERR_VALIDATION: 400,
  FST_ERR_CTP_BODY_TOO_LARGE: 413,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 415,
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
    const status = HTTP_STATUS[err.kind]
    const retry = err.details?.retryAfterSeconds
    return {
      status,
      code: err.code,
      message: err.kind === 'internal' ? 'Internal server error.' : err.message,
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
    FASTIFY_STATUS[code] ?? (e?.statusCode && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500)
  return { status, code, message: status >= 500 ? 'Internal server error.' : (e?.message ?? 'Bad request.') }
}

/** Error mapping and the 404 answer for unknown routes; the daemon answers every input and keeps serving. */
export const errorsPlugin = fp(
  async (app: FastifyInstance) => {
    app.setErrorHandler((err, request, reply) => {
      const answer = errorAnswer(err)
      // The request's one log line (request-log.ts) says why it failed; server errors keep the error.
      recordFailure(request, {
        code: answer.code,
        message: answer.message,
        ...(answer.status >= 500 ? { err } : {}),
      })
      if (answer.retryAfter !== undefined) reply.header('retry-after', String(answer.retryAfter))
      const body = isOpenAIPath(request.url)
        ? openaiErrorBody(err, answer, request.url)
        : { error: answer.message }
      reply.code(answer.status).type('application/json; charset=utf-8').send(body)
    })
    app.setNotFoundHandler((request, reply) => {
      const message = `No route ${request.method} ${request.url.split('?')[0]}.`
      if (!isOpenAIPath(request.url)) return reply.code(404).send({ error: message })
      const error = { message, type: 'not_found_error', param: null, code: 'unknown_url' }
      return reply.code(404).send({ error })
    })
  },
  { name: 'helix-errors', fastify: '5.x' },
)
