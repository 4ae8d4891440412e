import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { addModel, addToRepository, identityModel } from '../helpers/onnx-models.js'
import { writeChatModel, writeEmbeddingModel } from '../helpers/text-models.js'
import {
  addFrame,
  eventually,
  RawSocket,
  type RealtimeDaemon,
  sleep,
  startRealtimeDaemon,
} from './realtime-fixtures.js'

/** The protocol on a daemon without authentication: any token (or none) opens a session. */
let d: RealtimeDaemon
beforeAll(async () => {
  d = await startRealtimeDaemon({
    repository: async (models) => {
      await addToRepository(models, 'add', addModel())
      await writeChatModel(join(models, 'chat', '1'), { seed: 7 })
      await writeEmbeddingModel(join(models, 'embed', '1'), { seed: 3 })
    },
    realtime: { authTimeoutMs: 300, heartbeatMs: 200, maxRequestsPerSocket: 8, maxMessageBytes: 64 * 1024 },
  })
}, 120_000)
afterAll(async () => d?.close())

const metric = async (name: string, labels = '') => {
  const text = await d.metrics.registry.metrics()
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels}`))
  return line ? Number(line.split(' ').pop()) : 0
}

describe('connecting', () => {
  it('the first frame must be auth: anything else closes with 4401 and says so', async () => {
    const socket = await RawSocket.open(d.url)
    socket.send(addFrame('x', [1, 2, 3, 4], [1, 1, 1, 1]))
    expect(await socket.closed).toEqual({
      code: 4401,
      reason: 'the first frame must be {"type":"auth","token":"<API key or access token>"}',
    })
  })

  it('a socket that sends nothing is closed with 4401 after realtime.auth_timeout_s', async () => {
    const socket = await RawSocket.open(d.url)
    const started = Date.now()
    expect(await socket.closed).toEqual({ code: 4401, reason: 'authentication timed out' })
    expect(Date.now() - started).toBeGreaterThanOrEqual(250)
  })

  it('without authentication, any token or none opens a session with its limits', async () => {
    for (const token of [undefined, 'anything']) {
      const { socket, session } = await RawSocket.session(d.url, token)
      expect(session).toMatchObject({
        type: 'session',
        heartbeat_ms: 200,
        resume_grace_ms: 30_000,
        max_requests: 8,
        max_message_bytes: 64 * 1024,
      })
      expect(session.session_id).toMatch(/^[0-9a-f-]{36}$/)
      // 256 bits, base64url
      expect(session.resume_token).toMatch(/^[A-Za-z0-9_-]{43}$/)
      socket.close()
    }
  })

  it('an upgrade to another route is refused; /v1/realtime over plain HTTP is a 404', async () => {
    const ws = new WebSocket(d.url.replace('/v1/realtime', '/v2/health/live'))
    const closed = await new Promise<number>((resolve) => {
      ws.on('close', (code) => resolve(code))
      ws.on('error', () => {})
    })
    expect(closed).not.toBe(1000)
    const res = await d.app.inject({ method: 'GET', url: '/v1/realtime' })
    expect(res.statusCode).toBe(404)
  })
})

describe('requests on one socket', () => {
  it('runs infer, embeddings and generate concurrently, each frame tagged with its id and seq', async () => {
    const { socket } = await RawSocket.session(d.url)
    socket.send({
      type: 'generate',
      id: 'g',
      model: 'chat',
      messages: [{ role: 'user', content: 'Hello there' }],
      max_tokens: 12,
      temperature: 0,
    })
    socket.send(addFrame('i1', [1, 2, 3, 4, 5, 6, 7, 8], [10, 20, 30, 40, 50, 60, 70, 80]))
    socket.send({ type: 'embeddings', id: 'e', model: 'embed', version: '1', input: ['a cat', 'a dog'] })
    socket.send(addFrame('i2', [1, 1, 1, 1], [2, 2, 2, 2], 'add:1'))

    const [g, i1, e, i2] = await Promise.all(['g', 'i1', 'e', 'i2'].map((id) => socket.end(id)))
    expect(i1).toEqual({
      type: 'result',
      id: 'i1',
      seq: 1,
      model_name: 'add',
      model_version: '1',
      outputs: [{ name: 'sum', datatype: 'FP32', shape: [2, 4], data: [11, 22, 33, 44, 55, 66, 77, 88] }],
    })
    // `model` may name the version as /v1 takes it (name:version).
    expect(i2).toMatchObject({ model_name: 'add', model_version: '1' })
    expect(i2.outputs).toEqual([{ name: 'sum', datatype: 'FP32', shape: [1, 4], data: [3, 3, 3, 3] }])
    expect(e).toMatchObject({ type: 'result', id: 'e', seq: 1, model: 'embed', model_version: '1' })
    const data = e.data as { index: number; embedding: number[] }[]
    expect(data.map((x) => x.index)).toEqual([0, 1])
    expect(data[0].embedding.length).toBe(32)
    expect((e.usage as { prompt_tokens: number }).prompt_tokens).toBeGreaterThan(0)

    const deltas = socket.of('g').filter((f) => f.type === 'delta')
    expect(deltas.length).toBeGreaterThan(0)
    // seq counts 1, 2, … per request, and the done frame comes last.
    expect(socket.of('g').map((f) => f.seq)).toEqual(socket.of('g').map((_, k) => k + 1))
    expect(g).toMatchObject({ type: 'done', id: 'g', model: 'chat', model_version: '1' })
    expect(g.usage).toMatchObject({ completion_tokens: deltas.length })
    expect(deltas.map((f) => f.index)).toEqual(deltas.map((_, k) => k))
    socket.close()
  })

  it('the same generation through REST-less prompt text gives the same tokens each time (greedy)', async () => {
    const { socket } = await RawSocket.session(d.url)
    const frame = {
      type: 'generate',
      model: 'chat',
      prompt: 'Once upon a time',
      max_tokens: 8,
      temperature: 0,
    }
    socket.send({ ...frame, id: 'a' })
    socket.send({ ...frame, id: 'b' })
    await Promise.all([socket.end('a'), socket.end('b')])
    const ids = (id: string) => socket.of(id).flatMap((f) => (f.type === 'delta' ? [f.token_id] : []))
    expect(ids('a')).toEqual(ids('b'))
    expect(ids('a').length).toBe(8)
    socket.close()
  })

  it('refuses a duplicate id, too many requests, bad frames and invalid JSON with error frames, and keeps serving', async () => {
    const { socket } = await RawSocket.session(d.url)
    const long = { type: 'generate', model: 'chat', prompt: 'Go', max_tokens: 400, ignore_eos: true }
    socket.send({ ...long, id: 'dup' })
    socket.send({ ...long, id: 'dup' })
    const dup = await socket.next((f) => f.type === 'error' && f.id === 'dup')
    expect(dup).toMatchObject({ code: 'REQUEST_ID_IN_USE', status: 409 })
    expect(dup.seq).toBeUndefined()

    for (let k = 0; k < 7; k++) socket.send({ ...long, id: `fill${k}` })
    socket.send(addFrame('over', [1, 2, 3, 4], [1, 2, 3, 4]))
    const over = await socket.next((f) => f.id === 'over')
    expect(over).toMatchObject({ type: 'error', code: 'TOO_MANY_IN_FLIGHT', status: 429, retry_after: 1 })
    for (const id of ['dup', ...Array.from({ length: 7 }, (_, k) => `fill${k}`)])
      socket.send({ type: 'cancel', id })
    await Promise.all(['dup', ...Array.from({ length: 7 }, (_, k) => `fill${k}`)].map((id) => socket.end(id)))

    socket.send('{not json')
    expect(await socket.next((f) => f.type === 'error' && f.code === 'MALFORMED_JSON')).toMatchObject({
      status: 400,
    })
    socket.send({ type: 'teleport', id: 't' })
    expect(await socket.next((f) => f.id === 't')).toMatchObject({
      type: 'error',
      code: 'INVALID_INPUT',
      message: expect.stringContaining('Unknown frame type "teleport"'),
    })
    socket.send({ type: 'infer', id: 'bad', model: 'add', inputs: [] })
    expect(await socket.next((f) => f.id === 'bad')).toMatchObject({
      code: 'INVALID_INPUT',
      message: expect.stringMatching(/^Invalid infer frame: \/inputs: /),
    })
    socket.send({
      type: 'generate',
      id: 'both',
      model: 'chat',
      prompt: 'x',
      messages: [{ role: 'user', content: 'y' }],
    })
    expect(await socket.end('both')).toMatchObject({ type: 'error', seq: 1, code: 'INVALID_INPUT' })
    socket.send(addFrame('nomodel', [1, 2, 3, 4], [1, 2, 3, 4], 'nope'))
    expect(await socket.end('nomodel')).toMatchObject({ code: 'MODEL_NOT_FOUND', status: 404 })
    socket.send({ type: 'generate', id: 'wrongtask', model: 'embed', prompt: 'x' })
    expect(await socket.end('wrongtask')).toMatchObject({ code: 'MODEL_WRONG_TASK', status: 400 })
    socket.send({ type: 'auth', token: 'again' })
    expect(
      await socket.next((f) => f.type === 'error' && /already authenticated/.test(String(f.message))),
    ).toBeTruthy()
    socket.send({ type: 'ping', data: { t: 1 } })
    expect(await socket.next((f) => f.type === 'pong')).toEqual({ type: 'pong', data: { t: 1 } })

    socket.send(addFrame('after', [1, 2, 3, 4], [1, 2, 3, 4]))
    expect((await socket.end('after')).type).toBe('result')
    socket.close()
  })

  it('a frame larger than realtime.max_message_bytes closes the socket with 1009', async () => {
    const { socket } = await RawSocket.session(d.url)
    socket.send({ type: 'ping', data: 'x'.repeat(70 * 1024) })
    expect((await socket.closed).code).toBe(1009)
  })

  it('cancel stops a generation at its next step: it ends with a CANCELLED error frame', async () => {
    const { socket } = await RawSocket.session(d.url)
    socket.send({
      type: 'generate',
      id: 'c',
      model: 'chat',
      prompt: 'Go',
      max_tokens: 2000,
      ignore_eos: true,
    })
    await socket.next((f) => f.id === 'c' && f.type === 'delta' && (f.seq as number) >= 3)
    socket.send({ type: 'cancel', id: 'c' })
    const end = await socket.end('c')
    expect(end).toMatchObject({ type: 'error', code: 'CANCELLED', status: 499 })
    expect(socket.of('c').length).toBeLessThan(2000)
    // The id is free again once its request ended.
    socket.send(addFrame('c', [1, 2, 3, 4], [0, 0, 0, 0]))
    await socket.next((f) => f.id === 'c' && f.type === 'result')
    socket.close()
  })
})

describe('heartbeats', () => {
  it('the daemon pings; a client that never answers is closed, one that does stays', async () => {
    const silent = await RawSocket.open(d.url, { autoPong: false })
    silent.send({ type: 'auth' })
    await silent.next((f) => f.type === 'session')
    const polite = await RawSocket.session(d.url)
    const before = await metric('helix_realtime_closes_total', '{reason="heartbeat"}')
    const { code } = await silent.closed
    expect(code).toBe(1006)
    await eventually(
      async () => (await metric('helix_realtime_closes_total', '{reason="heartbeat"}')) === before + 1,
    )
    await sleep(500)
    expect(polite.socket.ws.readyState).toBe(WebSocket.OPEN)
    polite.socket.close()
  })
})

describe('backpressure', () => {
  it('a client that stops reading is closed with 4008 while other sockets are served without delay', async () => {
    const local = await startRealtimeDaemon({
      repository: async (models) => {
        await addToRepository(models, 'add', addModel())
        await addToRepository(models, 'echo', identityModel('FP32'), { config: { max_batch_size: 0 } })
      },
      realtime: {
        sendHighWaterBytes: 64 * 1024,
        maxSendQueueBytes: 1024 * 1024,
        resumeBufferBytes: 1024 * 1024,
        maxRequestsPerSocket: 64,
      },
    })
    try {
      const slow = await RawSocket.session(local.url)
      const fast = await RawSocket.session(local.url)
      // Stop reading: the socket's buffers fill, then its frames queue in the daemon.
      slow.socket.ws.pause()
      // Each answer is about 250 KB of JSON: 15 MB in all, more than the kernel buffers take.
      const rows = 10_000
      const big = Array.from({ length: rows * 3 }, (_, k) => k * 0.5)
      for (let k = 0; k < 60; k++)
        slow.socket.send({
          type: 'infer',
          id: `big${k}`,
          model: 'echo',
          inputs: [{ name: 'input', datatype: 'FP32', shape: [rows, 3], data: big }],
        })
      for (let k = 0; k < 5; k++) {
        fast.socket.send(addFrame(`f${k}`, [1, 2, 3, 4], [1, 1, 1, 1]))
        await fast.socket.end(`f${k}`, 5000)
      }
      await eventually(async () => {
        const text = await local.metrics.registry.metrics()
        return text.includes('helix_realtime_closes_total{reason="slow_consumer"} 1')
      })
      slow.socket.ws.resume()
      const { code } = await slow.socket.closed
      // The close frame is behind the unread data; a reader that never catches up sees the cut.
      expect([4008, 1006]).toContain(code)
      fast.socket.send(addFrame('after', [1, 2, 3, 4], [1, 1, 1, 1]))
      expect((await fast.socket.end('after')).type).toBe('result')
      fast.socket.close()
    } finally {
      await local.close()
    }
  })
})
