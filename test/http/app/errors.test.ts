import { describe, expect, it } from 'vitest'
import { QueueFullError } from '../../../src/core/infer/errors.js'
import { errorAnswer, STATUS_BY_CODE } from '../../../src/http/plugins/errors.js'
import { Failure, UserError } from '../../../src/shared/errors.js'

describe('errorAnswer', () => {
  it('maps the core codes through the one table', () => {
    expect(STATUS_BY_CODE).toMatchObject({
      MODEL_NOT_FOUND: 404,
      VERSION_NOT_FOUND: 404,
      INVALID_INPUT: 400,
      QUEUE_FULL: 429,
      MODEL_NOT_READY: 503,
      INFER_TIMEOUT: 504,
      BACKEND_FAILED: 500,
      BODY_TOO_LARGE: 413,
      MALFORMED_JSON: 400,
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

  it('keeps unknown user errors at 400 and hides unknown failures behind a generic 500', () => {
    expect(errorAnswer(new UserError('SOMETHING_NEW', 'Bad thing.'))).toEqual({
      status: 400,
      code: 'SOMETHING_NEW',
      message: 'Bad thing.',
    })
    expect(errorAnswer(new Failure('DB_DOWN', 'password=secret in connection string'))).toEqual({
      status: 500,
      code: 'DB_DOWN',
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
