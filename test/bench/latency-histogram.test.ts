import { describe, expect, it } from 'vitest'
import { LatencyHistogram, round } from '../../src/bench/latency-histogram.js'

describe('LatencyHistogram', () => {
  it('reports percentiles of known latencies within HDR precision', () => {
    const h = new LatencyHistogram()
    for (let ms = 1; ms <= 1000; ms++) h.record(ms)
    const s = h.summary()
    expect(s.count).toBe(1000)
    expect(s.min).toBeCloseTo(1, 2)
    // 3 significant digits: each value within 0.1% of the exact order statistic.
    for (const [value, exact] of [
      [s.p50, 500],
      [s.p90, 900],
      [s.p95, 950],
      [s.p99, 990],
      [s.p999, 999],
      [s.max, 1000],
    ]) {
      expect(Math.abs(value - exact) / exact).toBeLessThan(0.002)
    }
    expect(s.mean).toBeCloseTo(500.5, 0)
  })

  it('reports a skewed distribution: 99 fast requests and one slow', () => {
    const h = new LatencyHistogram()
    for (let i = 0; i < 99; i++) h.record(2)
    h.record(250)
    const s = h.summary()
    expect(s.p50).toBeCloseTo(2, 2)
    expect(s.p99).toBeCloseTo(2, 2)
    expect(s.p999).toBeCloseTo(250, 0)
    expect(s.max).toBeCloseTo(250, 0)
  })

  it('is all zeros when empty', () => {
    expect(new LatencyHistogram().summary()).toEqual({
      count: 0,
      mean: 0,
      min: 0,
      p50: 0,
      p90: 0,
      p95: 0,
      p99: 0,
      p999: 0,
      max: 0,
    })
  })

  it('survives encode/decode and merges', () => {
    const a = new LatencyHistogram()
    const b = new LatencyHistogram()
    for (let i = 0; i < 50; i++) a.record(10)
    for (let i = 0; i < 50; i++) b.record(30)
    const merged = LatencyHistogram.decode(a.encode())
    merged.add(LatencyHistogram.decode(b.encode()))
    expect(merged.count).toBe(100)
    expect(merged.percentile(25)).toBeCloseTo(10, 1)
    expect(merged.percentile(75)).toBeCloseTo(30, 1)
  })

  it('clamps sub-microsecond values to the lowest bucket and rounds to microseconds', () => {
    const h = new LatencyHistogram()
    h.record(0)
    expect(h.summary().max).toBeCloseTo(0.001, 3)
    expect(round(1.23456)).toBe(1.235)
  })
})
