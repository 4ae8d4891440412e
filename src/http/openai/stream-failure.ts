import type { FastifyRequest } from 'fastify'
import { type ErrorAnswer, errorAnswer } from '../plugins/errors.js'

/**
 * A failure after an event stream began: its answer (for the error event) from the one table. The
 * status already sent was 200, which the request log would not report, so the failure is logged here:
 * server errors with the error, others (a model unloaded under the stream) as a warning.
 */
export function streamFailure(request: FastifyRequest, err: unknown): ErrorAnswer {
  const answer = errorAnswer(err)
  const fields = { code: answer.code, error: answer.message, url: request.url }
  if (answer.status >= 500) request.log.error({ ...fields, err }, 'stream failed after it began')
  else request.log.warn(fields, 'stream failed after it began')
  return answer
}
