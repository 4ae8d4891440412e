import { describe, expect, it, vi } from 'vitest'
import { closeReasonText } from '../../src/http/realtime/connection.js'
import { parseClientFrame } from '../../src/http/realtime/frame-parser.js'
import { type FrameSink, FrameWriter, outFrame } from '../../src/http/realtime/frame-writer.js'
import { PrincipalSockets } from '../../src/http/realtime/principal-sockets.js'
import { ResumeStore } from '../../src/http/realtime/resume-store.js'
import { RealtimeSession } from '../../src/http/realtime/session.js'
import { DEFAULT_REALTIME_SETTINGS, realtimeSettings } from '../../src/http/realtime/settings.js'
import { parseConfig } from '../../src/shared/config.js'

/** A socket whose writes complete only when the test says so. */
class FakeSink implements FrameSink {
  bufferedAmount = 0
  readonly sent: string[] = []
  private readonly pending: { size: number; done: (err?: Error) => void }[] = []

  send(text: string, done: (err?: Error) => void): void {
    this.sent.push(text)
    this.bufferedAmount += text.length
    this.pending.push({ size: text.length, done })
  }

  /** The network takes the oldest `count` writes. */
  flush(count = Number.POSITIVE_INFINITY): void {
    for (let k = 0; k < count && this.pending.length > 0; k++) {
      const write = this.pending.shift() as { size: number; done: (err?: Error) => void }
      this.bufferedAmount -= write.size
      write.done()
    }
  }
}

const frame = (n: number) => outFrame('x'.repeat(n))

describe('FrameWriter', () => {
  it('sends while the socket buffers less than the high-water mark, then queues until writes complete', () => {
    const sink = new FakeSink()
    const overflow = vi.fn()
    const writer = new FrameWriter(sink, { highWaterBytes: 100, maxQueueBytes: 1000 }, overflow)
    const frames = [frame(60), frame(60), frame(60), frame(60)]
    for (const f of frames) writer.push(f)
    // 60 buffered < 100: the second goes too; then 120 ≥ 100 and the rest wait.
    expect(sink.sent).toHaveLength(2)
    expect(writer.queued).toBe(120)
    expect(frames.map((f) => f.sent)).toEqual([true, true, false, false])
    sink.flush(2)
    expect(sink.sent).toHaveLength(4)
    expect(writer.queued).toBe(0)
    expect(overflow).not.toHaveBeenCalled()
  })

  it('a single large frame to a reader is never an overflow; frames left waiting past the limit are, once', () => {
    const sink = new FakeSink()
    const overflow = vi.fn()
    const writer = new FrameWriter(sink, { highWaterBytes: 100, maxQueueBytes: 500 }, overflow)
    writer.push(frame(5000))
    expect(overflow).not.toHaveBeenCalled()
    for (let k = 0; k < 6; k++) writer.push(frame(100))
    expect(overflow).toHaveBeenCalledOnce()
    expect(writer.closed).toBe(true)
    writer.push(frame(1))
    sink.flush()
    expect(sink.sent).toHaveLength(1)
    expect(overflow).toHaveBeenCalledOnce()
  })

  it('keeps a long queue compact while it drains', () => {
    const sink = new FakeSink()
    const writer = new FrameWriter(sink, { highWaterBytes: 1, maxQueueBytes: 1e9 }, () => {})
    for (let k = 0; k < 3000; k++) writer.push(frame(1))
    for (let k = 0; k < 3000; k++) sink.flush(1)
    expect(sink.sent).toHaveLength(3000)
    expect(writer.queued).toBe(0)
  })

  it('a failed write stops nothing else (the socket is closing)', () => {
    const sink = new FakeSink()
    const writer = new FrameWriter(sink, { highWaterBytes: 10, maxQueueBytes: 1000 }, () => {})
    writer.push(frame(20))
    writer.push(frame(20))
    const [first] = (sink as unknown as { pending: { done: (err?: Error) => void }[] }).pending
    first.done(new Error('gone'))
    expect(sink.sent).toHaveLength(1)
  })
})

function session(limits = { resumeBufferBytes: 10_000, maxRequests: 4 }, onSend = vi.fn()) {
  return { s: new RealtimeSession('s1', 'apikey:k', limits, onSend), onSend }
}

function attached(s: RealtimeSession) {
  const sink = new FakeSink()
  const writer = new FrameWriter(sink, { highWaterBytes: 1e9, maxQueueBytes: 1e9 }, () => {})
  const evicted = vi.fn()
  s.attach(writer, evicted)
  return { sink, writer, evicted, frames: () => sink.sent.map((t) => JSON.parse(t)) }
}

describe('RealtimeSession', () => {
  it('numbers each request frame 1, 2, … and sends it with type, id and seq first', () => {
    const { s, onSend } = session()
    const { sink } = attached(s)
    const g = s.open('g"1', 'generate')
    s.emit(g, 'delta', { text: 'Hi', token_id: 5, index: 0 })
    s.emit(g, 'done', { finish_reason: 'stop' })
    const i = s.open('i', 'infer')
    s.emit(i, 'result', '"model_name":"add","outputs":[]')
    expect(sink.sent).toEqual([
      '{"type":"delta","id":"g\\"1","seq":1,"text":"Hi","token_id":5,"index":0}',
      '{"type":"done","id":"g\\"1","seq":2,"finish_reason":"stop"}',
      '{"type":"result","id":"i","seq":1,"model_name":"add","outputs":[]}',
    ])
    expect(onSend.mock.calls.map(([type]) => type)).toEqual(['delta', 'done', 'result'])
    // Finished requests emit nothing more.
    s.emit(g, 'delta', { text: 'late' })
    expect(sink.sent).toHaveLength(3)
    expect(s.running).toBe(0)
    expect(s.size).toBe(2)
  })

  it('refuses a busy id and more unfinished requests than allowed; a finished id may be used again', () => {
    const { s } = session({ resumeBufferBytes: 10_000, maxRequests: 2 })
    const a = s.open('a', 'generate')
    expect(() => s.open('a', 'infer')).toThrow(expect.objectContaining({ code: 'REQUEST_ID_IN_USE' }))
    s.open('b', 'generate')
    expect(() => s.open('c', 'infer')).toThrow(expect.objectContaining({ code: 'TOO_MANY_IN_FLIGHT' }))
    s.emit(a, 'error', { code: 'X' })
    const again = s.open('a', 'infer')
    expect(again).not.toBe(a)
    expect(again.nextSeq).toBe(1)
  })

  it('acknowledged frames are freed; a request whose last frame is acknowledged is forgotten', () => {
    const { s } = session()
    attached(s)
    const g = s.open('g', 'generate')
    for (let k = 0; k < 3; k++) s.emit(g, 'delta', { text: 'abc' })
    const before = s.bufferedBytes
    s.ack('g', 2)
    expect(s.bufferedBytes).toBeLessThan(before)
    expect(g.frames.map((f) => f.seq)).toEqual([3])
    s.ack('g', 99)
    expect(g.frames).toEqual([])
    expect(s.knows('g')).toBe(true)
    s.emit(g, 'done', {})
    s.ack('g', 4)
    expect(s.knows('g')).toBe(false)
    expect(s.bufferedBytes).toBe(0)
    s.ack('nope', 1)
  })

  it('replays, in order, every frame after the last seq the client names (or its last ack)', () => {
    const { s } = session()
    const first = attached(s)
    const g = s.open('g', 'generate')
    const i = s.open('i', 'infer')
    for (let k = 0; k < 4; k++) s.emit(g, 'delta', { k })
    s.emit(i, 'result', { ok: true })
    s.ack('i', 0)
    expect(s.detach(first.writer)).toBe(true)
    s.emit(g, 'delta', { k: 4 })
    const second = attached(s)
    expect(s.replay({ g: 2, ghost: 0 })).toEqual({ unknown: ['ghost'], lost: [] })
    expect(second.frames().map((f) => `${f.id}${f.seq}`)).toEqual(['g3', 'g4', 'g5', 'i1'])
    // The resumed client said it has g up to 2: those are acknowledged.
    expect(g.acked).toBe(2)
  })

  it('request ids that are names of Object.prototype are ids like any other', () => {
    const { s } = session()
    const first = attached(s)
    const odd = s.open('constructor', 'infer')
    s.emit(odd, 'result', {})
    s.detach(first.writer)
    const second = attached(s)
    expect(s.replay({})).toEqual({ unknown: [], lost: [] })
    expect(second.frames()).toEqual([{ type: 'result', id: 'constructor', seq: 1 }])
  })

  it('over the resume buffer while connected, frames already sent are dropped; a resume before them is a gap', () => {
    const { s } = session({ resumeBufferBytes: 200, maxRequests: 4 })
    const { writer } = attached(s)
    const g = s.open('g', 'generate')
    for (let k = 0; k < 10; k++) s.emit(g, 'delta', { text: 'x'.repeat(20) })
    expect(s.bufferedBytes).toBeLessThanOrEqual(200)
    expect(g.floor).toBeGreaterThan(0)
    s.detach(writer)
    attached(s)
    expect(s.replay({ g: 1 })).toEqual({ unknown: [], lost: ['g'] })
    expect(g.cancel.aborted).toBe(true)
    expect(g.stopReason).toMatch(/dropped before the resume/)
    expect(s.knows('g')).toBe(false)
  })

  it('finished requests whose frames were all dropped are forgotten', () => {
    const { s } = session({ resumeBufferBytes: 200, maxRequests: 4 })
    attached(s)
    const done = s.open('done', 'infer')
    s.emit(done, 'result', { pad: 'y'.repeat(100) })
    const g = s.open('g', 'generate')
    for (let k = 0; k < 3; k++) s.emit(g, 'delta', { text: 'x'.repeat(40) })
    expect(s.knows('done')).toBe(false)
  })

  it('over the resume buffer while disconnected, the request that overflows is cancelled with a reason', () => {
    const { s } = session({ resumeBufferBytes: 200, maxRequests: 4 })
    const g = s.open('g', 'generate')
    for (let k = 0; k < 10; k++) s.emit(g, 'delta', { text: 'x'.repeat(20) })
    expect(g.cancel.aborted).toBe(true)
    expect(g.stopReason).toMatch(/resume buffer filled/)
    // Nothing was dropped: a resume gets every frame kept.
    expect(g.floor).toBe(0)
  })

  it('a new socket takes the session over: the previous one is told, and its close changes nothing', () => {
    const { s } = session()
    const first = attached(s)
    const second = attached(s)
    expect(first.evicted).toHaveBeenCalledOnce()
    expect(s.detach(first.writer)).toBe(false)
    expect(s.isAttachedTo(second.writer)).toBe(true)
    s.sendControl({ type: 'pong' })
    expect(second.frames()).toEqual([{ type: 'pong' }])
    s.detach()
    expect(s.attached).toBe(false)
    s.sendControl({ type: 'pong' })
  })

  it('cancel and destroy abort the requests', () => {
    const { s } = session()
    const a = s.open('a', 'generate')
    const b = s.open('b', 'generate')
    s.cancel('a')
    s.cancel('nope')
    expect(a.cancel.aborted).toBe(true)
    expect(a.stopReason).toBeUndefined()
    s.destroy()
    expect(b.cancel.aborted).toBe(true)
    expect(b.stopReason).toBe('The session ended.')
    expect(s.size).toBe(0)
    b.stop('again')
    expect(b.stopReason).toBe('The session ended.')
  })
})

describe('ResumeStore', () => {
  const make =
    (owner = 'apikey:k') =>
    (id: string) =>
      new RealtimeSession(id, owner, { resumeBufferBytes: 1000, maxRequests: 4 })

  it('hands out 256-bit tokens, single use, rotated on each resume, for the same owner only', () => {
    const store = new ResumeStore({ graceMs: 1000, maxDetachedPerOwner: 4 })
    const { session, token } = store.create(make())
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(store.claim(session.id, token, 'apikey:other')).toBeUndefined()
    expect(store.claim('unknown', token, 'apikey:k')).toBeUndefined()
    const altered = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A')
    expect(store.claim(session.id, altered, 'apikey:k')).toBeUndefined()
    const claimed = store.claim(session.id, token, 'apikey:k')
    expect(claimed?.session).toBe(session)
    expect(claimed?.token).not.toBe(token)
    expect(store.claim(session.id, token, 'apikey:k')).toBeUndefined()
    expect(store.claim(session.id, claimed?.token as string, 'apikey:k')?.session).toBe(session)
    store.close()
    expect(store.size).toBe(0)
  })

  it('a detached session lives for the grace period, then its requests are cancelled', async () => {
    vi.useFakeTimers()
    try {
      const store = new ResumeStore({ graceMs: 1000, maxDetachedPerOwner: 4 })
      const { session, token } = store.create(make())
      const request = session.open('g', 'generate')
      store.detached(session)
      vi.advanceTimersByTime(900)
      expect(store.size).toBe(1)
      // A resume stops the clock; a second detach starts it again.
      const claimed = store.claim(session.id, token, 'apikey:k')
      vi.advanceTimersByTime(5000)
      expect(store.size).toBe(1)
      store.detached(session)
      vi.advanceTimersByTime(1000)
      expect(store.size).toBe(0)
      expect(request.cancel.aborted).toBe(true)
      expect(store.claim(session.id, claimed?.token as string, 'apikey:k')).toBeUndefined()
    } finally {
      vi.useRealTimers()
    }
  })

  it('an empty session, or any with no grace period, ends at once; past the bound the longest-waiting ends', () => {
    const store = new ResumeStore({ graceMs: 1000, maxDetachedPerOwner: 2 })
    const empty = store.create(make()).session
    store.detached(empty)
    expect(store.size).toBe(0)
    const sessions = [1, 2, 3].map(() => store.create(make()).session)
    for (const s of sessions) {
      s.open('r', 'generate')
      store.detached(s)
    }
    expect(store.size).toBe(2)
    const other = store.create(make('apikey:other')).session
    other.open('r', 'generate')
    store.detached(other)
    expect(store.size).toBe(3)
    store.detached(new RealtimeSession('stranger', 'x', { resumeBufferBytes: 1, maxRequests: 1 }))
    store.remove(new RealtimeSession(sessions[2].id, 'x', { resumeBufferBytes: 1, maxRequests: 1 }))
    expect(store.size).toBe(3)
    store.close()

    const none = new ResumeStore({ graceMs: 0, maxDetachedPerOwner: 2 })
    const s = none.create(make()).session
    s.open('r', 'generate')
    none.detached(s)
    expect(none.size).toBe(0)
  })
})

describe('PrincipalSockets', () => {
  it('counts sockets per owner up to the bound', () => {
    const sockets = new PrincipalSockets(2)
    expect([sockets.acquire('a'), sockets.acquire('a'), sockets.acquire('a'), sockets.acquire('b')]).toEqual([
      true,
      true,
      false,
      true,
    ])
    sockets.release('a')
    expect(sockets.count('a')).toBe(1)
    sockets.release('a')
    sockets.release('a')
    expect(sockets.count('a')).toBe(0)
  })
})

describe('parseClientFrame', () => {
  const parse = (text: string, binary = false) => parseClientFrame(Buffer.from(text), binary)

  it('accepts each known frame', () => {
    expect(parse('{"type":"ack","id":"a","seq":3}')).toEqual({
      ok: true,
      frame: { type: 'ack', id: 'a', seq: 3 },
    })
    expect(parse('{"type":"generate","id":"g","model":"m","prompt":[1,2],"stop":"x"}').ok).toBe(true)
    expect(parse('{"type":"embeddings","id":"e","model":"m","input":[[1,2],[3]]}').ok).toBe(true)
    expect(parseClientFrame('{"type":"ping"}', false).ok).toBe(true)
  })

  it('says what is wrong with anything else, with the id when there is one', () => {
    const refusal = (text: string, binary = false) => {
      const parsed = parse(text, binary)
      if (parsed.ok) throw new Error('accepted')
      return { code: parsed.error.code, message: parsed.error.message, id: parsed.id }
    }
    expect(refusal('{}', true)).toMatchObject({ message: expect.stringContaining('binary') })
    expect(refusal('[1]')).toMatchObject({ message: 'A frame is a JSON object with a "type".' })
    expect(refusal('null')).toMatchObject({ code: 'INVALID_INPUT' })
    expect(refusal('{"id":"x"}')).toMatchObject({
      id: 'x',
      message: expect.stringContaining('Unknown frame type null'),
    })
    expect(refusal('{"type":"ack","id":"a","seq":-1}')).toMatchObject({
      id: 'a',
      message: expect.stringMatching(/^Invalid ack frame: \/seq: /),
    })
    expect(refusal('{"type":"cancel","id":""}')).toMatchObject({ message: expect.stringContaining('/id') })
    expect(refusal('{"type":"auth","__proto__":{"x":1}}')).toMatchObject({ code: 'MALFORMED_JSON' })
    expect(refusal('{"type":')).toMatchObject({ code: 'MALFORMED_JSON' })
  })
})

describe('realtimeSettings', () => {
  it("helix.yaml's defaults are the app's defaults", () => {
    expect(realtimeSettings(parseConfig({}).realtime)).toEqual(DEFAULT_REALTIME_SETTINGS)
  })
})

describe('closeReasonText', () => {
  it('keeps a close reason within the 123 bytes a close frame allows, on a character boundary', () => {
    expect(closeReasonText('credential revoked')).toBe('credential revoked')
    const long = closeReasonText('é'.repeat(100))
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(123)
    expect(long.endsWith('…')).toBe(true)
    expect(long).toMatch(/^é+…$/)
  })
})
