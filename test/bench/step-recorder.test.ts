import { describe, expect, it } from 'vitest'
import { phaseFor } from '../../src/bench/phase.js'
import { poissonGapsMs } from '../../src/bench/poisson.js'
import { splitLoad } from '../../src/bench/split-load.js'
import { StepRecorder } from '../../src/bench/step-recorder.js'

describe('StepRecorder', () => {
  it('separates successes, errors by kind, server timings, tokens and a per-second timeline', () => {
    const r = new StepRecorder()
    r.record({ at: 100, latencyMs: 10, queueMs: 1, computeMs: 4 })
    r.record({ at: 200, latencyMs: 20 })
    r.record({ at: 2500, latencyMs: 30, error: 'status 503' })
    r.record({ at: 2600, latencyMs: 40, ttftMs: 5, interTokenMs: [1, 2] })
    expect(r.successes).toBe(3)
    expect(r.errorCount).toBe(1)
    expect(r.requests).toBe(4)
    expect(r.errors).toEqual({ 'status 503': 1 })
    expect(r.serverDuration(r.queue)).toEqual({ count: 1, mean: 1, p99: 1 })
    expect(r.serverDuration(new StepRecorder().queue)).toBeUndefined()
    expect(r.streamSummary()?.tokens).toBe(3)
    expect(new StepRecorder().streamSummary()).toBeUndefined()
    const timeline = r.timelinePoints()
    expect(timeline.map((t) => [t.second, t.requests, t.errors])).toEqual([
      [0, 2, 0],
      [1, 0, 0],
      [2, 2, 1],
    ])
    expect(timeline[0].p99).toBeCloseTo(20, 1)
  })

  it('merges encoded recorders from worker threads losslessly', () => {
    const a = new StepRecorder()
    const b = new StepRecorder()
    for (let i = 0; i < 10; i++)
      a.record({ at: 10, latencyMs: 5, queueMs: 1, computeMs: 2, ttftMs: 3, interTokenMs: [1] })
    for (let i = 0; i < 10; i++) b.record({ at: 1500, latencyMs: 15 })
    b.record({ at: 1500, latencyMs: 1, error: 'timeout' })
    a.record({ at: 1500, latencyMs: 1, error: 'timeout' })
    const merged = StepRecorder.decode(a.encode())
    merged.merge(StepRecorder.decode(b.encode()))
    expect(merged.successes).toBe(20)
    expect(merged.errors).toEqual({ timeout: 2 })
    expect(merged.latency.percentile(25)).toBeCloseTo(5, 1)
    expect(merged.latency.percentile(75)).toBeCloseTo(15, 1)
    expect(merged.tokens).toBe(20)
    expect(merged.timelinePoints().map((t) => t.requests)).toEqual([10, 12])
  })
})

describe('poissonGapsMs', () => {
  it('has mean 1/rate and the exponential coefficient of variation 1', () => {
    const gaps = poissonGapsMs(200)
    const xs = Array.from({ length: 20_000 }, () => gaps.next().value as number)
    const mean = xs.reduce((a, b) => a + b, 0) / xs.length
    const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length)
    expect(mean).toBeGreaterThan(5 * 0.95)
    expect(mean).toBeLessThan(5 * 1.05)
    expect(sd / mean).toBeGreaterThan(0.9)
    expect(sd / mean).toBeLessThan(1.1)
  })
  it('uses the injected random source', () => {
    expect(poissonGapsMs(1000, () => 1 - Math.exp(-1)).next().value).toBeCloseTo(1, 6)
  })
})

describe('splitLoad and phaseFor', () => {
  it('splits clients and requests as integers and the rate evenly', () => {
    expect(splitLoad({ mode: 'closed', concurrency: 5 }, { requests: 7 }, 2)).toEqual([
      { load: { mode: 'closed', concurrency: 3 }, stop: { requests: 4 } },
      { load: { mode: 'closed', concurrency: 2 }, stop: { requests: 3 } },
    ])
    expect(splitLoad({ mode: 'closed', concurrency: 1 }, { durationMs: 10 }, 3)).toHaveLength(1)
    expect(splitLoad({ mode: 'open', rate: 100 }, { durationMs: 10 }, 4).map((s) => s.load)).toEqual(
      Array(4).fill({ mode: 'open', rate: 25 }),
    )
    expect(splitLoad({ mode: 'open', rate: 100 }, { requests: 1 }, 2)).toHaveLength(1)
  })
  it('turns stop rules into a measured window', () => {
    expect(phaseFor(5, { durationMs: 10 })).toEqual({
      measureStart: 5,
      measureEnd: 15,
      requests: Number.POSITIVE_INFINITY,
    })
    expect(phaseFor(5, { requests: 3 })).toEqual({
      measureStart: 5,
      measureEnd: Number.POSITIVE_INFINITY,
      requests: 3,
    })
  })
})
