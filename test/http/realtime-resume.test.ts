import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { addModel, addToRepository } from '../helpers/onnx-models.js'
import { writeChatModel } from '../helpers/text-models.js'
import {
  addFrame,
  eventually,
  RawSocket,
  type RealtimeDaemon,
  sleep,
  startRealtimeDaemon,
} from './realtime-fixtures.js'

/** Resuming a session on a new socket, at the protocol level (the client library does this itself). */
let d: RealtimeDaemon
beforeAll(async () => {
  d = await startRealtimeDaemon({
    repository: async (models) => {
      await addToRepository(models, 'add', addModel())
      await writeChatModel(join(models, 'chat', '1'), { seed: 7 })
    },
    // 32 KiB: room for a 300-token stream (about 21 KB of frames), not for a 1024-token one.
    realtime: { resumeGraceMs: 1500, resumeBufferBytes: 32 * 1024 },
  })
}, 120_000)
afterAll(async () => d?.close())

const LONG = { type: 'generate', model: 'chat', prompt: 'Tell me a story', temperature: 0, ignore_eos: true }
const tokenIds = (socket: RawSocket, id: string) =>
  socket.of(id).flatMap((f) => (f.type === 'delta' ? [f.token_id] : []))

async function uninterrupted(maxTokens: number): Promise<number[]> {
  const { socket } = await RawSocket.session(d.url)
  socket.send({ ...LONG, id: 'ref', max_tokens: maxTokens })
  await socket.end('ref')
  socket.close()
  return tokenIds(socket, 'ref')
}

const metric = async (line: string) => (await d.metrics.registry.metrics()).split('\n').includes(line)
/** The value of one series (0 when absent). */
const value = async (series: string) => {
  const line = (await d.metrics.registry.metrics()).split('\n').find((l) => l.startsWith(`${series} `))
  return line ? Number(line.slice(series.length + 1)) : 0
}

describe('resume', () => {
  it('a dropped socket: its generation keeps running; a resume replays every frame after the last received, once, in order', async () => {
    const reference = await uninterrupted(300)
    const first = await RawSocket.session(d.url)
    first.socket.send({ ...LONG, id: 'g', max_tokens: 300 })
    await first.socket.next((f) => f.id === 'g' && (f.seq as number) >= 20)
    first.socket.send({ type: 'ack', id: 'g', seq: 10 })
    first.socket.ws.terminate()
    const received = first.socket.of('g')
    const last = received[received.length - 1].seq as number

    const second = await RawSocket.session(d.url)
    second.socket.send({
      type: 'resume',
      session_id: first.session.session_id,
      resume_token: first.session.resume_token,
      last_seq: { g: last },
    })
    const resumed = await second.socket.next((f) => f.type === 'resumed')
    expect(resumed).toMatchObject({ session_id: first.session.session_id, unknown: [] })
    expect(resumed.resume_token).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(resumed.resume_token).not.toBe(first.session.resume_token)
    const done = await second.socket.end('g')
    expect(done.type).toBe('done')
    const replayed = second.socket.of('g')
    expect(replayed[0].seq).toBe(last + 1)
    expect([...received, ...replayed].map((f) => f.seq)).toEqual(
      [...received, ...replayed].map((_, k) => k + 1),
    )
    expect([...tokenIds(first.socket, 'g'), ...tokenIds(second.socket, 'g')]).toEqual(reference)
    expect(await metric('helix_realtime_resumes_total{outcome="resumed"} 1')).toBe(true)

    // Single use: the spent token no longer resumes, the new one does (and may say nothing of g).
    const third = await RawSocket.session(d.url)
    third.socket.send({
      type: 'resume',
      session_id: first.session.session_id,
      resume_token: first.session.resume_token,
    })
    expect(await third.socket.next((f) => f.type === 'error')).toMatchObject({
      code: 'SESSION_NOT_FOUND',
      status: 404,
    })
    third.socket.send({
      type: 'resume',
      session_id: first.session.session_id,
      resume_token: resumed.resume_token,
    })
    // The first refusal did not use up the resume: the live token still works on the same socket.
    const again = await third.socket.next((f) => f.type === 'resumed')
    expect(again.session_id).toBe(first.session.session_id)
    // Taking the session over closes the socket it was on.
    expect((await second.socket.closed).code).toBe(4409)
    third.socket.close()
  })

  it('frames the client never acknowledged are sent again when last_seq does not name the request', async () => {
    const first = await RawSocket.session(d.url)
    first.socket.send(addFrame('i', [1, 2, 3, 4], [1, 1, 1, 1]))
    await first.socket.end('i')
    first.socket.ws.terminate()
    const second = await RawSocket.session(d.url)
    second.socket.send({
      type: 'resume',
      session_id: first.session.session_id,
      resume_token: first.session.resume_token,
      last_seq: { ghost: 0 },
    })
    expect(await second.socket.next((f) => f.type === 'resumed')).toMatchObject({ unknown: ['ghost'] })
    expect(await second.socket.end('i')).toMatchObject({ type: 'result', seq: 1 })
    second.socket.send({ type: 'ack', id: 'i', seq: 1 })
    second.socket.close()
  })

  it('every refusal of a resume reads the same: unknown session, wrong token, a resume after a request', async () => {
    const { socket, session } = await RawSocket.session(d.url)
    socket.send({ type: 'resume', session_id: 'no-such-session', resume_token: session.resume_token })
    const unknown = await socket.next((f) => f.type === 'error')
    socket.send({ type: 'resume', session_id: session.session_id, resume_token: 'x'.repeat(43) })
    await eventually(() => socket.frames.filter((f) => f.type === 'error').length === 2)
    const [a, b] = socket.frames.filter((f) => f.type === 'error')
    expect(a).toEqual(b)
    expect(unknown).toMatchObject({ code: 'SESSION_NOT_FOUND' })
    socket.send(addFrame('x', [1, 2, 3, 4], [1, 1, 1, 1]))
    await socket.end('x')
    socket.send({ type: 'resume', session_id: session.session_id, resume_token: session.resume_token })
    expect(await socket.next((f) => f.type === 'error' && f.code === 'INVALID_INPUT')).toMatchObject({
      message: 'A resume must be the first frame after auth, before any request.',
    })
    socket.close()
  })

  it('after the grace period the generation is cancelled and the session gone; a clean close ends it at once', async () => {
    const first = await RawSocket.session(d.url)
    first.socket.send({ ...LONG, id: 'g', max_tokens: 2000 })
    await first.socket.next((f) => f.id === 'g' && f.type === 'delta')
    first.socket.ws.terminate()
    await sleep(2000)
    const second = await RawSocket.session(d.url)
    second.socket.send({
      type: 'resume',
      session_id: first.session.session_id,
      resume_token: first.session.resume_token,
    })
    expect(await second.socket.next((f) => f.type === 'error')).toMatchObject({ code: 'SESSION_NOT_FOUND' })
    // Nothing of it runs any more: no sequence in the batch, its KV cache freed.
    await eventually(
      async () => (await value('helix_text_sequences{model="chat",version="1",state="running"}')) === 0,
    )
    expect(
      await value('helix_text_requests_total{model="chat",endpoint="realtime",finish_reason="cancelled"}'),
    ).toBeGreaterThan(0)
    second.socket.close()

    const third = await RawSocket.session(d.url)
    third.socket.send(addFrame('i', [1, 2, 3, 4], [1, 1, 1, 1]))
    await third.socket.end('i')
    third.socket.close()
    await third.socket.closed
    const fourth = await RawSocket.session(d.url)
    fourth.socket.send({
      type: 'resume',
      session_id: third.session.session_id,
      resume_token: third.session.resume_token,
    })
    expect(await fourth.socket.next((f) => f.type === 'error')).toMatchObject({ code: 'SESSION_NOT_FOUND' })
    fourth.socket.close()
  })

  it('a resume buffer that fills while disconnected cancels the request; its kept frames still come', async () => {
    // 4 KiB: about 50 delta frames.
    const local = await startRealtimeDaemon({
      repositoryDir: d.repositoryDir,
      realtime: { resumeBufferBytes: 4096 },
    })
    try {
      const cancelled =
        'helix_text_requests_total{model="chat",endpoint="realtime",finish_reason="cancelled"}'
      const first = await RawSocket.session(local.url)
      first.socket.send({ ...LONG, id: 'g', max_tokens: 2000 })
      // Any close but 1000 or 1001 is a drop; this one reaches the daemon right after the request, so
      // the generation runs while nobody is connected.
      first.socket.ws.close(4000, 'dropping on purpose')
      await eventually(
        async () => (await local.metrics.registry.metrics()).includes(`${cancelled} 1`),
        30_000,
      )
      const second = await RawSocket.session(local.url)
      second.socket.send({
        type: 'resume',
        session_id: first.session.session_id,
        resume_token: first.session.resume_token,
        last_seq: { g: 0 },
      })
      const end = await second.socket.end('g')
      expect(end).toMatchObject({
        type: 'error',
        code: 'CANCELLED',
        message: expect.stringContaining('resume buffer'),
      })
      const all = second.socket.of('g')
      expect(all.map((f) => f.seq)).toEqual(all.map((_, k) => k + 1))
      expect(all.length).toBeGreaterThan(10)
      second.socket.close()
    } finally {
      await local.close()
    }
  })

  it('a client that never acknowledges cannot resume past the frames dropped for it (RESUME_GAP)', async () => {
    const first = await RawSocket.session(d.url)
    first.socket.send({ ...LONG, id: 'g', max_tokens: 2000 })
    await first.socket.end('g', 30_000)
    first.socket.ws.terminate()
    const second = await RawSocket.session(d.url)
    second.socket.send({
      type: 'resume',
      session_id: first.session.session_id,
      resume_token: first.session.resume_token,
      last_seq: { g: 5 },
    })
    expect(await second.socket.next((f) => f.type === 'error' && f.id === 'g')).toMatchObject({
      code: 'RESUME_GAP',
      status: 409,
    })
    second.socket.close()
  })
})
