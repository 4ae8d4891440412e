import { connect, createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type GenerationStream,
  RealtimeClient,
  type RealtimeClientEvent,
  type RealtimeClientOptions,
  realtimeUrl,
} from '../../src/client/realtime-client.js'
import type { DeltaFrame } from '../../src/shared/realtime-protocol.js'
import { addModel, addToRepository } from '../helpers/onnx-models.js'
import { QWEN3_IM_END_ID, writeChatModel, writeEmbeddingModel } from '../helpers/text-models.js'
import { disposeReferences, referenceEmbeddings, referenceGreedy } from '../helpers/transformers-reference.js'
import { eventually, type RealtimeDaemon, startRealtimeDaemon } from '../http/realtime-fixtures.js'

/** A TCP relay between the client and the daemon whose connections can be cut: a network that fails. */
class FlakyNetwork {
  private readonly pairs = new Set<[Socket, Socket]>()
  private server: Server | undefined
  port = 0

  async start(target: number): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(target, '127.0.0.1')
      const pair: [Socket, Socket] = [client, upstream]
      this.pairs.add(pair)
      client.pipe(upstream)
      upstream.pipe(client)
      const drop = () => {
        client.destroy()
        upstream.destroy()
        this.pairs.delete(pair)
      }
      client.on('error', drop).on('close', drop)
      upstream.on('error', drop).on('close', drop)
    })
    this.server = server
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    this.port = (server.address() as { port: number }).port
  }

  /** Nothing goes through any more, either way, but the connections stay open (a half-open network). */
  stall(direction: 'up' | 'both' = 'both'): void {
    for (const [client, upstream] of this.pairs) {
      client.pause()
      if (direction === 'both') upstream.pause()
    }
  }

  /** Every connection through the relay breaks at once (no close frame, no FIN from the peers). */
  cut(): void {
    for (const [a, b] of this.pairs) {
      a.resetAndDestroy()
      b.resetAndDestroy()
    }
    this.pairs.clear()
  }

  async stop(): Promise<void> {
    this.cut()
    await new Promise<void>((resolve) => this.server?.close(() => resolve()))
  }
}

const CHAT = [{ role: 'user', content: 'Tell me about the sea, in many words.' }]
let d: RealtimeDaemon
let chatDir: string
let embedDir: string
const clients: RealtimeClient[] = []

function client(
  options: Partial<RealtimeClientOptions> = {},
  events?: RealtimeClientEvent[],
): RealtimeClient {
  const c = new RealtimeClient({
    url: d.url,
    reconnect: { initialDelayMs: 20, maxDelayMs: 200, maxAttempts: 20 },
    ...(events ? { onEvent: (e) => events.push(e) } : {}),
    ...options,
  })
  clients.push(c)
  return c
}

/** Drains a stream into its deltas, the done frame and the text. */
async function drain(stream: GenerationStream, onDelta?: (delta: DeltaFrame, count: number) => void) {
  const deltas: DeltaFrame[] = []
  for await (const delta of stream) {
    deltas.push(delta)
    onDelta?.(delta, deltas.length)
  }
  const done = await stream.result
  return {
    deltas,
    ids: deltas.map((x) => x.token_id),
    done,
    text: deltas.map((x) => x.text).join('') + done.text,
  }
}

beforeAll(async () => {
  d = await startRealtimeDaemon({
    repository: async (models) => {
      await addToRepository(models, 'add', addModel())
      chatDir = join(models, 'chat', '1')
      embedDir = join(models, 'embed', '1')
      await writeChatModel(chatDir, { seed: 7 })
      await writeEmbeddingModel(embedDir, { seed: 3 })
    },
  })
}, 120_000)

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()))
  await d?.close()
  await disposeReferences()
})

describe('RealtimeClient', () => {
  it('builds the socket URL from a daemon URL', () => {
    expect(realtimeUrl('http://127.0.0.1:8080')).toBe('ws://127.0.0.1:8080/v1/realtime')
    expect(realtimeUrl('https://api.example.com/')).toBe('wss://api.example.com/v1/realtime')
    expect(realtimeUrl('ws://h:1/v1/realtime')).toBe('ws://h:1/v1/realtime')
  })

  it('runs a chat, embeddings and a tensor inference at once; the tokens equal transformers.js greedy decoding', async () => {
    const c = client()
    await c.connect()
    expect(c.sessionId).toMatch(/^[0-9a-f-]{36}$/)
    const [chat, embedded, inferred, rtt] = await Promise.all([
      drain(c.generate({ model: 'chat', messages: CHAT, max_tokens: 40, temperature: 0 })),
      c.embed({ model: 'embed', input: ['a cat sat', 'the sea'] }),
      c.infer({
        model: 'add',
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] },
          { name: 'b', datatype: 'FP32', shape: [1, 4], data: [1, 1, 1, 1] },
        ],
      }),
      c.ping(),
    ])
    const reference = await referenceGreedy(chatDir, { messages: CHAT, maxNewTokens: 40 })
    const eos = reference.at(-1) === QWEN3_IM_END_ID || reference.length < 40
    expect(chat.ids).toEqual(eos ? reference.slice(0, -1) : reference)
    expect(chat.done).toMatchObject({
      type: 'done',
      finish_reason: eos ? 'stop' : 'length',
      model: 'chat',
      usage: { completion_tokens: reference.length },
    })
    const expected = await referenceEmbeddings(embedDir, ['a cat sat', 'the sea'], {
      pooling: 'mean',
      normalize: true,
    })
    for (const [i, row] of embedded.data.entries()) {
      const diff = Math.max(...row.embedding.map((v, k) => Math.abs(v - expected[i][k])))
      expect(diff).toBeLessThan(1e-5)
    }
    expect(inferred.outputs[0]).toEqual({ name: 'sum', datatype: 'FP32', shape: [1, 4], data: [2, 3, 4, 5] })
    expect(rtt).toBeGreaterThanOrEqual(0)
  })

  it('a token stream survives dropped connections: the iterator sees every token once, in order, equal to an uninterrupted run', async () => {
    const request = { model: 'chat', messages: CHAT, max_tokens: 300, temperature: 0, ignore_eos: true }
    const plain = client()
    await plain.connect()
    const uninterrupted = await drain(plain.generate(request))
    expect(uninterrupted.ids.length).toBe(300)

    // The daemon cuts the socket (server side) mid-stream, twice.
    const events: RealtimeClientEvent[] = []
    const c = client({}, events)
    await c.connect()
    const sessionId = c.sessionId
    const run = await drain(c.generate(request), (_, count) => {
      if (count === 20 || count === 150)
        for (const socket of d.app.websocketServer.clients) socket.terminate()
    })
    expect(run.ids).toEqual(uninterrupted.ids)
    // And both equal transformers.js greedy decoding, up to its end-of-sequence token.
    const reference = await referenceGreedy(chatDir, { messages: CHAT, maxNewTokens: 300 })
    const upToEos = reference.at(-1) === QWEN3_IM_END_ID ? reference.slice(0, -1) : reference
    expect(run.ids.slice(0, upToEos.length)).toEqual(upToEos)
    expect(run.deltas.map((x) => x.seq)).toEqual(run.deltas.map((_, k) => k + 1))
    expect(run.text).toBe(uninterrupted.text)
    expect(events.filter((e) => e.type === 'resumed')).toHaveLength(2)
    expect(c.sessionId).toBe(sessionId)
  })

  it('the network drops (both ends cut without a close frame): the client reconnects, resumes and nothing is lost or repeated', async () => {
    const network = new FlakyNetwork()
    await network.start(Number(new URL(d.url).port))
    try {
      const request = {
        model: 'chat',
        prompt: 'The lighthouse keeper',
        max_tokens: 250,
        temperature: 0,
        ignore_eos: true,
      }
      const plain = client()
      await plain.connect()
      const uninterrupted = await drain(plain.generate(request))

      const events: RealtimeClientEvent[] = []
      const c = client({ url: `ws://127.0.0.1:${network.port}/v1/realtime` }, events)
      await c.connect()
      const streams = [c.generate(request), c.generate(request)]
      const runs = await Promise.all(
        streams.map((s, i) =>
          drain(s, (_, count) => {
            if (i === 0 && (count === 5 || count === 100 || count === 200)) network.cut()
          }),
        ),
      )
      for (const run of runs) {
        expect(run.ids).toEqual(uninterrupted.ids)
        expect(run.text).toBe(uninterrupted.text)
      }
      expect(events.filter((e) => e.type === 'disconnected').length).toBeGreaterThanOrEqual(1)
      expect(events.filter((e) => e.type === 'resumed').length).toBe(
        events.filter((e) => e.type === 'connected').length - 1,
      )
      // The session kept working: a request after the drops.
      expect((await c.embed({ model: 'embed', input: 'still here' })).data).toHaveLength(1)
    } finally {
      await network.stop()
    }
  })

  it('breaking out of the iterator cancels the generation; stream.cancel() too', async () => {
    const c = client()
    await c.connect()
    const stream = c.generate({ model: 'chat', prompt: 'Go on', max_tokens: 2000, ignore_eos: true })
    let seen = 0
    for await (const _ of stream) if (++seen === 3) break
    await expect(stream.result).rejects.toMatchObject({ code: 'CANCELLED', status: 499 })
    const other = c.generate({ model: 'chat', prompt: 'Go on', max_tokens: 2000, ignore_eos: true })
    other.cancel()
    await expect(other.text()).rejects.toMatchObject({ code: 'CANCELLED' })
    await eventually(async () =>
      (await d.metrics.registry.metrics()).includes(
        'helix_text_sequences{model="chat",version="1",state="running"} 0',
      ),
    )
  })

  it('failures reject with the daemon code and status; close() fails what is unfinished', async () => {
    const c = client()
    await c.connect()
    await expect(c.embed({ model: 'nope', input: 'x' })).rejects.toMatchObject({
      code: 'MODEL_NOT_FOUND',
      status: 404,
    })
    await expect(c.generate({ model: 'embed', prompt: 'x' }).result).rejects.toMatchObject({
      code: 'MODEL_WRONG_TASK',
    })
    const long = c.generate({ model: 'chat', prompt: 'x', max_tokens: 2000, ignore_eos: true })
    await c.close()
    await expect(long.result).rejects.toMatchObject({ code: 'CANCELLED' })
    await expect(c.infer({ model: 'add', inputs: [] })).rejects.toMatchObject({ code: 'INVALID_INPUT' })
  })

  it('a token function is asked on each connect (a refreshed access token for the resume)', async () => {
    let asked = 0
    const c = client({
      token: () => {
        asked++
        return 'whatever'
      },
    })
    await c.connect()
    expect(asked).toBe(1)
    for (const socket of d.app.websocketServer.clients) socket.terminate()
    await eventually(() => asked === 2 && c.connected)
  })

  it('gives up after maxAttempts when the daemon is gone: unfinished requests fail with CONNECTION_LOST', async () => {
    const local = await startRealtimeDaemon({
      repository: async (models) => {
        await writeChatModel(join(models, 'chat', '1'), { seed: 7 })
      },
    })
    const events: RealtimeClientEvent[] = []
    const c = client(
      { url: local.url, reconnect: { initialDelayMs: 10, maxDelayMs: 20, maxAttempts: 3 } },
      events,
    )
    await c.connect()
    const stream = c.generate({ model: 'chat', prompt: 'x', max_tokens: 2000, ignore_eos: true })
    for await (const _ of stream) break
    const pending = c.generate({ model: 'chat', prompt: 'y', max_tokens: 2000, ignore_eos: true })
    await local.close()
    await expect(pending.result).rejects.toMatchObject({ code: 'CONNECTION_LOST' })
    expect(events.filter((e) => e.type === 'reconnecting').length).toBe(3)
    expect(events.at(-1)).toMatchObject({ type: 'closed' })
  })

  it('a session that ended during the drop: requests with nothing received yet are sent again, streams under way fail', async () => {
    const local = await startRealtimeDaemon({
      repository: async (models) => {
        await writeChatModel(join(models, 'chat', '1'), { seed: 7 })
      },
      realtime: { resumeGraceMs: 1 },
    })
    try {
      const c = client({
        url: local.url,
        reconnect: { initialDelayMs: 200, maxDelayMs: 200, maxAttempts: 3 },
      })
      await c.connect()
      const running = c.generate({ model: 'chat', prompt: 'x', max_tokens: 2000, ignore_eos: true })
      for await (const _ of running) {
        for (const socket of local.app.websocketServer.clients) socket.terminate()
        // Sent while the connection is down: it goes out on the new session.
        const later = c.generate({ model: 'chat', prompt: 'y', max_tokens: 3, temperature: 0 })
        expect((await later.result).usage.completion_tokens).toBeGreaterThan(0)
        break
      }
      await expect(running.result).rejects.toMatchObject({ code: 'CONNECTION_LOST' })
    } finally {
      await local.close()
    }
  })
})

describe('RealtimeClient on a failing network', () => {
  let network: FlakyNetwork
  let local: RealtimeDaemon
  beforeAll(async () => {
    local = await startRealtimeDaemon({
      repository: async (models) => {
        await addToRepository(models, 'add', addModel())
        await writeChatModel(join(models, 'chat', '1'), { seed: 7 })
      },
      realtime: { heartbeatMs: 200, maxRequestsPerSocket: 2 },
    })
    network = new FlakyNetwork()
    await network.start(Number(new URL(local.url).port))
  }, 120_000)
  afterAll(async () => {
    await network?.stop()
    await local?.close()
  })

  const viaNetwork = (events?: RealtimeClientEvent[]) =>
    client({ url: `ws://127.0.0.1:${network.port}/v1/realtime` }, events)
  const ADD = {
    model: 'add',
    inputs: [
      { name: 'a', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] },
      { name: 'b', datatype: 'FP32', shape: [1, 4], data: [1, 1, 1, 1] },
    ],
  }

  it('a request the daemon never received is sent again after the resume; a cancel made offline goes out after it', async () => {
    const events: RealtimeClientEvent[] = []
    const c = viaNetwork(events)
    await Promise.all([c.connect(), c.connect()])
    const running = c.generate({ model: 'chat', prompt: 'x', max_tokens: 1000, ignore_eos: true })
    const iterator = running[Symbol.asyncIterator]()
    await iterator.next()
    // The request leaves the client but stops in the network, which then breaks.
    network.stall('up')
    const lost = c.infer(ADD)
    await new Promise((resolve) => setTimeout(resolve, 50))
    network.cut()
    await eventually(() => events.some((e) => e.type === 'disconnected'))
    running.cancel()
    expect((await lost).outputs[0].data).toEqual([2, 3, 4, 5])
    await expect(running.result).rejects.toMatchObject({ code: 'CANCELLED' })
    expect(events.filter((e) => e.type === 'resumed')).toHaveLength(1)
    await expect(running[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'INVALID_INPUT' })
  })

  it('a connection that goes silent (half-open) is dropped after two heartbeats and resumed', async () => {
    const events: RealtimeClientEvent[] = []
    const c = viaNetwork(events)
    await c.connect()
    const stream = c.generate({
      model: 'chat',
      prompt: 'y',
      max_tokens: 300,
      temperature: 0,
      ignore_eos: true,
    })
    const seen: number[] = []
    for await (const delta of stream) {
      seen.push(delta.seq)
      if (seen.length === 10) network.stall()
    }
    expect(seen).toEqual(seen.map((_, k) => k + 1))
    expect(seen).toHaveLength(300)
    expect(events.filter((e) => e.type === 'resumed')).toHaveLength(1)
  })

  it('a refused request (too many in flight) rejects with the code, status and retry time', async () => {
    const c = viaNetwork()
    await c.connect()
    const streams = [1, 2].map(() =>
      c.generate({ model: 'chat', prompt: 'z', max_tokens: 1000, ignore_eos: true }),
    )
    await expect(c.infer(ADD)).rejects.toMatchObject({
      code: 'TOO_MANY_IN_FLIGHT',
      status: 429,
      retryAfterSeconds: 1,
    })
    for (const s of streams) s.cancel()
    await Promise.allSettled(streams.map((s) => s.result))
    await c.close()
    await expect(c.ping()).rejects.toMatchObject({ code: 'CONNECTION_LOST' })
    await expect(c.connect()).rejects.toMatchObject({ code: 'INVALID_INPUT' })
  })
})
