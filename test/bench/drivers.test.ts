import { performance } from 'node:perf_hooks'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runClosedLoop } from '../../src/bench/closed-loop.js'
import { errorKind, LoadClient } from '../../src/bench/load-client.js'
import { runOpenLoop } from '../../src/bench/open-loop.js'
import { phaseFor } from '../../src/bench/phase.js'
import { runStep, stepLabel, workerEntry } from '../../src/bench/run-step.js'
import { StepRecorder } from '../../src/bench/step-recorder.js'
import type { RequestPlan, StepPlan } from '../../src/bench/types.js'
import { mulberry32 } from '../helpers/text-models.js'
import { startServer, type TestServer } from './servers.js'

const echo = (url: string, path = '/echo'): RequestPlan => ({
  origin: url,
  path,
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: Buffer.from('{"a":1}'),
  stream: 'none',
})

describe('load drivers against a real Fastify server', () => {
  let server: TestServer
  let slow: TestServer
  beforeAll(async () => {
    server = await startServer()
    slow = await startServer({ delayMs: 20 })
  })
  afterAll(async () => {
    await server.close()
    await slow.close()
  })

  it('closed loop keeps exactly `concurrency` requests in flight and sends the requested count', async () => {
    const client = new LoadClient(echo(slow.url), 4, 5000)
    const recorder = new StepRecorder()
    await runClosedLoop(client, 4, phaseFor(performance.now(), { requests: 40 }), recorder)
    await client.close()
    expect(recorder.successes).toBe(40)
    expect(slow.hits.get('/echo')).toBe(40)
    expect(slow.maxInFlight()).toBe(4)
    // Every request waited for the 20 ms the server sleeps.
    expect(recorder.latency.summary().min).toBeGreaterThanOrEqual(19)
  })

  it('closed loop discards warm-up requests and stops at the end of the duration', async () => {
    const client = new LoadClient(echo(server.url), 2, 5000)
    const recorder = new StepRecorder()
    const before = server.hits.get('/echo') ?? 0
    const start = performance.now() + 200
    const last = await runClosedLoop(client, 2, phaseFor(start, { durationMs: 300 }), recorder)
    await client.close()
    const sent = (server.hits.get('/echo') ?? 0) - before
    expect(recorder.successes).toBeGreaterThan(0)
    expect(sent).toBeGreaterThan(recorder.successes) // warm-up requests reached the server, unrecorded
    expect(last).toBeGreaterThanOrEqual(start)
    expect(performance.now() - start).toBeLessThan(2000)
  })

  it('open loop offers Poisson arrivals at the requested rate', async () => {
    const client = new LoadClient(echo(server.url), 16, 5000)
    const recorder = new StepRecorder()
    server.arrivals.length = 0
    const start = performance.now()
    // A seeded schedule: the arrival count is then fixed by the gaps, not by chance (a Poisson count
    // of mean 400 has sd 20, so an unseeded run leaves ±15 % about once in 2000 runs).
    await runOpenLoop(client, 200, phaseFor(start, { durationMs: 2000 }), recorder, start, mulberry32(17))
    await client.close()
    // 400 expected arrivals; the seeded schedule must land within ±15 % of them.
    expect(server.arrivals.length).toBeGreaterThan(340)
    expect(server.arrivals.length).toBeLessThan(460)
    expect(recorder.successes).toBe(server.arrivals.length)
    const gaps = server.arrivals.slice(1).map((t, i) => t - server.arrivals[i])
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length
    const sd = Math.sqrt(gaps.reduce((a, b) => a + (b - mean) ** 2, 0) / gaps.length)
    expect(sd / mean).toBeGreaterThan(0.7) // exponential gaps, not a fixed pace (cv 0)
  })

  it('open loop charges a stalled server for every request it delayed (coordinated omission)', async () => {
    // One connection to a server that takes 20 ms while requests are due every 5 ms: the queue grows,
    // and latency measured from the intended send time must grow with it.
    const client = new LoadClient(echo(slow.url), 1, 5000)
    const recorder = new StepRecorder()
    const start = performance.now()
    await runOpenLoop(client, 200, phaseFor(start, { requests: 30 }), recorder, start, () => 0.63)
    await client.close()
    const s = recorder.latency.summary()
    expect(recorder.successes).toBe(30)
    expect(s.min).toBeGreaterThanOrEqual(19)
    // The 30th request was due at ~150 ms but could only finish after 30 × 20 ms.
    expect(s.max).toBeGreaterThan(350)
  })

  it('open loop sends only the requested count after warm-up', async () => {
    const client = new LoadClient(echo(server.url), 4, 5000)
    const recorder = new StepRecorder()
    const start = performance.now()
    await runOpenLoop(client, 1000, phaseFor(start + 50, { requests: 25 }), recorder, start)
    await client.close()
    expect(recorder.successes).toBe(25)
  })

  it('turns statuses and transport failures into error kinds', async () => {
    const notFound = new LoadClient({ ...echo(server.url), path: '/nope' }, 1, 5000)
    expect(await notFound.send(performance.now())).toMatchObject({ error: 'status 404' })
    await notFound.close()
    const refused = new LoadClient(echo('http://127.0.0.1:1'), 1, 5000)
    expect(await refused.send(performance.now())).toMatchObject({ error: 'ECONNREFUSED' })
    await refused.close()
    // undici checks header timeouts on a coarse (~0.5 s) clock, hence a server slower than that.
    const stalled = await startServer({ delayMs: 2000 })
    const timedOut = new LoadClient(echo(stalled.url), 1, 10)
    expect(await timedOut.send(performance.now())).toMatchObject({ error: 'timeout' })
    await timedOut.close()
    await stalled.close()
    expect(errorKind({ code: 'UND_ERR_SOCKET' })).toBe('socket closed')
    expect(errorKind(new TypeError('x'))).toBe('TypeError')
  })

  it('reads Server-Timing and SSE tokens', async () => {
    const infer = new LoadClient(
      { ...echo(server.url, '/v2/models/m/infer'), body: Buffer.from('{"inputs":[{"name":"x"}]}') },
      1,
      5000,
    )
    expect(await infer.send(performance.now())).toMatchObject({ queueMs: 0.25, computeMs: 1.5 })
    await infer.close()
    const chat = new LoadClient({ ...echo(server.url, '/v1/chat/completions'), stream: 'sse' }, 1, 5000)
    const sample = await chat.send(performance.now())
    await chat.close()
    // The server waits 5 ms before each of the four tokens. A busy machine may hand two tokens over in
    // one read (a gap near 0), but never hand the last one over before it was written.
    expect(sample.ttftMs).toBeGreaterThanOrEqual(4)
    expect(sample.interTokenMs).toHaveLength(3)
    for (const gap of sample.interTokenMs!) expect(gap).toBeGreaterThanOrEqual(0)
    const lastTokenMs = sample.ttftMs! + sample.interTokenMs!.reduce((a, b) => a + b, 0)
    expect(lastTokenMs).toBeGreaterThanOrEqual(19)
    const empty = new LoadClient({ ...echo(server.url, '/echo'), stream: 'sse' }, 1, 5000)
    expect(await empty.send(performance.now())).toMatchObject({ error: 'no tokens' })
    await empty.close()
  })
})

describe('runStep', () => {
  let server: TestServer
  beforeAll(async () => {
    server = await startServer()
  })
  afterAll(() => server.close())

  const step = (over: Partial<StepPlan>): StepPlan => ({
    load: { mode: 'closed', concurrency: 2 },
    stop: { requests: 50 },
    warmupMs: 0,
    connections: 8,
    timeoutMs: 5000,
    workers: 0,
    ...over,
  })

  it('summarises a closed-loop step with progress updates', async () => {
    const progress: number[] = []
    const result = await runStep(echo(server.url), step({ stop: { durationMs: 600 }, warmupMs: 100 }), (p) =>
      progress.push(p.successes),
    )
    expect(result.label).toBe('c=2')
    expect(result.successes).toBeGreaterThan(0)
    expect(result.errorCount).toBe(0)
    expect(result.throughput).toBeCloseTo(result.successes / (result.durationMs / 1000), 0)
    expect(result.latency.p50).toBeGreaterThan(0)
    expect(result.latency.p99).toBeGreaterThanOrEqual(result.latency.p50)
    expect(result.clientCpu).toBeGreaterThan(0)
    expect(result.timeline.length).toBeGreaterThanOrEqual(1)
    expect(progress.length).toBeGreaterThan(0)
    expect(result.server).toBeUndefined()
  })

  it('splits load across worker threads and merges their histograms', async () => {
    const before = server.hits.get('/v2/models/m/infer') ?? 0
    const plan = { ...echo(server.url, '/v2/models/m/infer'), body: Buffer.from('{"inputs":[{"name":"x"}]}') }
    const updates: number[] = []
    const result = await runStep(
      plan,
      step({ workers: 2, load: { mode: 'open', rate: 400 }, stop: { requests: 120 }, warmupMs: 300 }),
      (p) => updates.push(p.successes),
    )
    expect(result.label).toBe('rate=400')
    expect(result.successes).toBe(120)
    expect(result.correctedForCoordinatedOmission).toBe(true)
    expect(result.server?.queue?.mean).toBeCloseTo(0.25, 2)
    expect(result.server?.compute?.count).toBe(120)
    expect((server.hits.get('/v2/models/m/infer') ?? 0) - before).toBeGreaterThan(120)
    expect(updates.length).toBeGreaterThan(0)
  })

  it('labels steps and finds the compiled worker', () => {
    expect(stepLabel({ load: { mode: 'open', rate: 5 } })).toBe('rate=5')
    expect(workerEntry()).toMatch(/dist[/\\]bench[/\\]worker\.js$/)
  })
})
