import { describe, expect, it } from 'vitest'
import { QueueFullError } from '../../../src/core/infer/errors.js'
import { errorAnswer, HTTP_STATUS } from '../../../src/http/plugins/errors.js'
import { ERROR_KINDS } from '../../../src/shared/error-codes.js'
import { Failure, UserError } from '../../../src/shared/errors.js'

describe('errorAnswer', () => {
  it('maps the core codes through their kind, in the one table', () => {
    const statusOf = (code: keyof typeof ERROR_KINDS) => HTTP_STATUS[ERROR_KINDS[code]]
    expect({
      MODEL_NOT_FOUND: statusOf('MODEL_NOT_FOUND'),
      VERSION_NOT_FOUND: statusOf('VERSION_NOT_FOUND'),
      INVALID_INPUT: statusOf('INVALID_INPUT'),
      QUEUE_FULL: statusOf('QUEUE_FULL'),
      RATE_LIMITED: statusOf('RATE_LIMITED'),
      MODEL_NOT_READY: statusOf('MODEL_NOT_READY'),
      INFER_TIMEOUT: statusOf('INFER_TIMEOUT'),
      BACKEND_FAILED: statusOf('BACKEND_FAILED'),
      BODY_TOO_LARGE: statusOf('BODY_TOO_LARGE'),
      MALFORMED_JSON: statusOf('MALFORMED_JSON'),
      USER_EXISTS: statusOf('USER_EXISTS'),
      MAIL_FAILED: statusOf('MAIL_FAILED'),
    }).toEqual({
      MODEL_NOT_FOUND: 404,
      VERSION_NOT_FOUND: 404,
      INVALID_INPUT: 400,
      QUEUE_FULL: 429,
      RATE_LIMITED: 429,
      MODEL_NOT_READY: 503,
      INFER_TIMEOUT: 504,
      BACKEND_FAILED: 500,
      BODY_TOO_LARGE: 413,
      MALFORMED_JSON: 400,
      USER_EXISTS: 409,
      MAIL_FAILED: 502,
    })
    expect(errorAnswer(new Failure('INFER_TIMEOUT', 'Inference timed out.'))).toEqual({
      status: 504,
      code: 'INFER_TIMEOUT',
      message: 'Inference timed out.',
    })
  })

  it('adds Retry-After to 429s from the core estimate, at least 1 s', () => {
    expect(errorAnswer(new QueueFullError('Queue full.', 2.2))).toMatchObject({ status: 429, retryAfter: 3 })
    expect(errorAnswer(new Failure('QUEUE_FULL', 'Queue full.'))).toMatchObject({
      status: 429,
      retryAfter: 1,
    })
  })

  it('answers bad-input codes with 400 and their message, and hides internal failures behind a 500', () => {
    expect(errorAnswer(new UserError('MODEL_INVALID', 'Bad thing.'))).toEqual({
      status: 400,
      code: 'MODEL_INVALID',
      message: 'Bad thing.',
    })
    expect(errorAnswer(new Failure('DB_UNREACHABLE', 'password=secret in connection string'))).toEqual({
      status: 500,
      code: 'DB_UNREACHABLE',
      message: 'Internal server error.',
    })
    expect(errorAnswer(new Error('boom at /srv/x.ts:12'))).toEqual({
      status: 500,
      code: 'INTERNAL',
      message: 'Internal server error.',
    })
    expect(errorAnswer(undefined)).toMatchObject({ status: 500 })
  })

  it('passes through 4xx errors from Fastify and its plugins', () => {
    const tooMany = Object.assign(new Error('Slow down.'), { statusCode: 429, code: 'FST_SOMETHING' })
    expect(errorAnswer(tooMany)).toEqual({ status: 429, code: 'FST_SOMETHING', message: 'Slow down.' })
    const validation = Object.assign(new Error('body/ready must be boolean'), {
      validation: [{ params: {} }],
    })
    expect(errorAnswer(validation)).toEqual({
      status: 400,
      code: 'INVALID_INPUT',
      message: 'body/ready must be boolean',
    })
  })
})
