/** One cumulative bucket of a Prometheus histogram: observations ≤ `le`. */
export interface HistogramBucket {
  le: number
  count: number
}

/** A histogram read from the metrics registry, with the percentiles Prometheus would estimate from it. */
export interface HistogramSummary {
  count: number
  sum: number
  /** sum / count (0 without observations). */
  mean: number
  p50: number
  p90: number
  p95: number
  p99: number
  /** Cumulative and finite; the +Inf bucket is `count`. */
  buckets: HistogramBucket[]
}

/**
 * The q-quantile of cumulative buckets as PromQL's histogram_quantile() estimates it: linear
 * interpolation inside the bucket the rank falls in, from 0 for the first bucket; a rank beyond the
 * last finite bucket answers that bucket's bound. 0 without observations.
 */
export function bucketQuantile(q: number, buckets: readonly HistogramBucket[], count: number): number {
  if (count <= 0 || buckets.length === 0) return 0
  const rank = q * count
  let lowerBound = 0
  let lowerCount = 0
  for (const bucket of buckets) {
    if (bucket.count >= rank) {
      const inBucket = bucket.count - lowerCount
      if (inBucket <= 0) return bucket.le
      return lowerBound + ((bucket.le - lowerBound) * (rank - lowerCount)) / inBucket
    }
    lowerBound = bucket.le
    lowerCount = bucket.count
  }
  return buckets[buckets.length - 1].le
}

/** Buckets (any order, +Inf included or not), sum and count as one summary. */
export function summarizeHistogram(
  buckets: readonly HistogramBucket[],
  sum: number,
  count: number,
): HistogramSummary {
  const finite = buckets.filter((b) => Number.isFinite(b.le)).sort((a, b) => a.le - b.le)
  return {
    count,
    sum,
    mean: count > 0 ? sum / count : 0,
    p50: bucketQuantile(0.5, finite, count),
    p90: bucketQuantile(0.9, finite, count),
    p95: bucketQuantile(0.95, finite, count),
    p99: bucketQuantile(0.99, finite, count),
    buckets: finite.map((b) => ({ le: b.le, count: b.count })),
  }
}

/** The difference of two readings of the same histogram (observations between them). */
export function histogramDelta(
  now: { buckets: readonly HistogramBucket[]; sum: number; count: number },
  before: { buckets: readonly HistogramBucket[]; sum: number; count: number } | undefined,
): { buckets: HistogramBucket[]; sum: number; count: number } {
  if (!before) return { buckets: [...now.buckets], sum: now.sum, count: now.count }
  const earlier = new Map(before.buckets.map((b) => [b.le, b.count]))
  return {
    buckets: now.buckets.map((b) => ({ le: b.le, count: b.count - (earlier.get(b.le) ?? 0) })),
    sum: now.sum - before.sum,
    count: now.count - before.count,
  }
}
