import { describe, expect, it } from 'vitest'
import { bucketQuantile, histogramDelta, summarizeHistogram } from '../../../src/core/monitoring/histogram.js'

describe('histogram summaries', () => {
  // 10 observations: 2 ≤ 0.1, 6 more ≤ 0.5, 2 more ≤ 1.
  const buckets = [
    { le: 0.1, count: 2 },
    { le: 0.5, count: 8 },
    { le: 1, count: 10 },
  ]

  it('estimates quantiles as PromQL histogram_quantile does', () => {
    // rank 5 falls in (0.1, 0.5] holding ranks 3..8: 0.1 + 0.4 * (5 - 2) / 6
    expect(bucketQuantile(0.5, buckets, 10)).toBeCloseTo(0.3, 12)
    // rank 1 in the first bucket interpolates from 0
    expect(bucketQuantile(0.1, buckets, 10)).toBeCloseTo(0.05, 12)
    expect(bucketQuantile(0.99, buckets, 10)).toBeCloseTo(0.5 + (0.5 * (9.9 - 8)) / 2, 12)
    expect(bucketQuantile(0.5, [], 0)).toBe(0)
    expect(bucketQuantile(0.5, buckets, 0)).toBe(0)
  })

  it('answers the last finite bound for ranks in the +Inf bucket', () => {
    expect(bucketQuantile(0.99, [{ le: 1, count: 5 }], 10)).toBe(1)
  })

  it('summarizes readings in any order, dropping +Inf, with the mean', () => {
    const summary = summarizeHistogram(
      [{ le: Number.POSITIVE_INFINITY, count: 10 }, ...[...buckets].reverse()],
      3.5,
      10,
    )
    expect(summary.buckets).toEqual(buckets)
    expect(summary.mean).toBe(0.35)
    expect(summary.p50).toBeCloseTo(0.3, 12)
    expect(summary.p90).toBeLessThanOrEqual(summary.p95)
    expect(summary.p95).toBeLessThanOrEqual(summary.p99)
    expect(summarizeHistogram([], 0, 0)).toMatchObject({ count: 0, mean: 0, p99: 0, buckets: [] })
  })

  it('subtracts an earlier reading', () => {
    const earlier = { buckets: buckets.map((b) => ({ ...b, count: b.count - 1 })), sum: 3, count: 9 }
    expect(histogramDelta({ buckets, sum: 3.5, count: 10 }, earlier)).toEqual({
      buckets: buckets.map((b) => ({ le: b.le, count: 1 })),
      sum: 0.5,
      count: 1,
    })
    expect(histogramDelta({ buckets, sum: 3.5, count: 10 }, undefined).count).toBe(10)
  })
})
