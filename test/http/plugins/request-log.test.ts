import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createModelService, type HelixModelService } from '../../../src/core/infer/model-service.js'
import { buildApp, REDACTED_PATHS } from '../../../src/http/app.js'
import {
  DEFAULT_REQUEST_LOG,
  type RequestLogPolicy,
  requestLogLevel,
} from '../../../src/http/plugins/request-log.js'
import { tempDir } from '../../helpers/cli.js'
import { addModel, addToRepository } from '../../helpers/onnx-models.js'

describe('requestLogLevel', () => {
  const policy = (mode: RequestLogPolicy['mode'], sampleRate = 0.5): RequestLogPolicy => ({
    mode,
    sampleRate,
  })

  it('logs server errors under every mode, client errors unless off, the rest by mode', () => {
    for (const mode of ['off', 'errors', 'sample', 'all'] as const) {
      expect(requestLogLevel(500, policy(mode)), mode).toBe('error')
      expect(requestLogLevel(503, policy(mode)), mode).toBe('error')
    }
    expect(requestLogLevel(404, policy('off'))).toBeUndefined()
    expect(requestLogLevel(401, policy('errors'))).toBe('info')
    expect(requestLogLevel(429, policy('sample'))).toBe('info')
    expect(requestLogLevel(200, policy('off'))).toBeUndefined()
    expect(requestLogLevel(200, policy('errors'))).toBeUndefined()
    expect(requestLogLevel(304, policy('all'))).toBe('info')
  })

  it('samples the rest: a draw below sample_rate is logged', () => {
    expect(requestLogLevel(200, policy('sample', 0.25), () => 0.2)).toBe('info')
    expect(requestLogLevel(200, policy('sample', 0.25), () => 0.25)).toBeUndefined()
    expect(requestLogLevel(200, policy('sample', 0), () => 0)).toBeUndefined()
    expect(requestLogLevel(200, policy('sample', 1), () => 0.999)).toBe('info')
  })

  it('defaults to errors: nginx keeps the access log', () => {
    expect(DEFAULT_REQUEST_LOG).toEqual({ mode: 'errors', sampleRate: 0.01 })
  })
})

type Line = Record<string, unknown> & { msg: string; level: number }

/** A built app over one real model, logging into `lines`, with a route that fails on the server. */
async function loggedApp(requestLog?: RequestLogPolicy) {
  const repo = await tempDir('helix-request-log-')
  await addToRepository(repo.dir, 'add', addModel())
  const service: HelixModelService = await createModelService({
    repositoryDir: repo.dir,
    defaultDevice: 'cpu',
  })
  const lines: Line[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line))
      done()
    },
  })
  const app: FastifyInstance = await buildApp({
    service,
    requestLog,
    logger: { level: 'info', redact: { paths: REDACTED_PATHS, censor: '[redacted]' }, stream } as never,
  })
  app.get('/boom', async () => {
    throw new Error('the disk caught fire')
  })
  await app.ready()
  return {
    app,
    lines,
    close: async () => {
      await app.close()
      await service.close()
      await repo.cleanup()
    },
  }
}

const INFER = {
  method: 'POST' as const,
  url: '/v2/models/add/infer',
  headers: { authorization: 'Bearer hx_secret_value_never_logged' },
  payload: {
    inputs: [
      { name: 'a', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] },
      { name: 'b', shape: [1, 4], datatype: 'FP32', data: [1, 1, 1, 1] },
    ],
  },
}

describe('the request log of the daemon', () => {
  describe('by default (errors)', () => {
    let t: Awaited<ReturnType<typeof loggedApp>>
    beforeAll(async () => {
      t = await loggedApp()
    })
    afterAll(() => t?.close())

    it('writes nothing for a successful request', async () => {
      const before = t.lines.length
      expect((await t.app.inject(INFER)).statusCode).toBe(200)
      expect((await t.app.inject({ method: 'GET', url: '/v2/health/live' })).statusCode).toBe(200)
      expect(t.lines.slice(before)).toEqual([])
    })

    it('writes one info line for a client error, with the reason and without the credential', async () => {
      const before = t.lines.length
      const res = await t.app.inject({ ...INFER, url: '/v2/models/nope/infer' })
      expect(res.statusCode).toBe(404)
      const mine = t.lines.slice(before)
      expect(mine).toEqual([
        expect.objectContaining({
          level: 30,
          msg: 'request completed',
          reqId: expect.any(String),
          req: expect.objectContaining({ method: 'POST', url: '/v2/models/nope/infer' }),
          res: { statusCode: 404 },
          responseTime: expect.any(Number),
          code: 'MODEL_NOT_FOUND',
          error: expect.stringContaining('nope'),
        }),
      ])
      expect(JSON.stringify(mine)).not.toContain('hx_secret_value_never_logged')
      expect(JSON.stringify(mine)).not.toContain('"inputs"')
    })

    it('writes one error line for a server error, with the error and its stack', async () => {
      const before = t.lines.length
      expect((await t.app.inject({ method: 'GET', url: '/boom' })).statusCode).toBe(500)
      const mine = t.lines.slice(before)
      expect(mine).toHaveLength(1)
      expect(mine[0]).toMatchObject({
        level: 50,
        msg: 'request completed',
        res: { statusCode: 500 },
        code: 'INTERNAL',
        error: 'Internal server error.',
        err: {
          message: 'the disk caught fire',
          stack: expect.stringContaining('Error: the disk caught fire'),
        },
      })
    })

    it('an unknown route is a client error too', async () => {
      const before = t.lines.length
      expect((await t.app.inject({ method: 'GET', url: '/no/such/route' })).statusCode).toBe(404)
      expect(t.lines.slice(before)).toEqual([
        expect.objectContaining({ msg: 'request completed', res: { statusCode: 404 } }),
      ])
    })
  })

  it('all: one line per request, and off: only server errors', async () => {
    const all = await loggedApp({ mode: 'all', sampleRate: 0 })
    try {
      await all.app.inject(INFER)
      await all.app.inject({ method: 'GET', url: '/v2/health/live' })
      expect(all.lines.filter((l) => l.msg === 'request completed').map((l) => l.req)).toEqual([
        expect.objectContaining({ url: '/v2/models/add/infer' }),
        expect.objectContaining({ url: '/v2/health/live' }),
      ])
      expect(all.lines.some((l) => l.msg === 'incoming request')).toBe(false)
    } finally {
      await all.close()
    }
    const off = await loggedApp({ mode: 'off', sampleRate: 1 })
    try {
      await off.app.inject(INFER)
      await off.app.inject({ method: 'GET', url: '/no/such/route' })
      await off.app.inject({ method: 'GET', url: '/boom' })
      expect(off.lines.filter((l) => l.msg === 'request completed').map((l) => l.res)).toEqual([
        { statusCode: 500 },
      ])
    } finally {
      await off.close()
    }
  })
})
