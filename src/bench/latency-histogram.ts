import hdr from 'hdr-histogram-js'
import type { LatencySummary } from './types.js'

// Microsecond resolution, 3 significant digits (0.1% error), up to 10 minutes — the range
// perf_analyzer and wrk2 use; anything slower than that is a timeout, not a latency.
const HIGHEST_US = 600_000_000

/** An HDR histogram of durations recorded in milliseconds and stored in microseconds. */
export class LatencyHistogram {
  readonly histogram: hdr.Histogram

  constructor(histogram?: hdr.Histogram) {
    this.histogram =
      histogram ??
      hdr.build({
        lowestDiscernibleValue: 1,
        highestTrackableValue: HIGHEST_US,
        numberOfSignificantValueDigits: 3,
        useWebAssembly: false,
      })
  }

  record(ms: number): void {
    this.histogram.recordValue(Math.min(HIGHEST_US, Math.max(1, Math.round(ms * 1000))))
  }

  get count(): number {
    return this.histogram.totalCount
  }

  /** Value at a percentile (0–100) in milliseconds. */
  percentile(p: number): number {
    return this.count === 0 ? 0 : this.histogram.getValueAtPercentile(p) / 1000
  }

  add(other: LatencyHistogram): void {
    this.histogram.add(other.histogram)
  }

  summary(): LatencySummary {
    const empty = this.count === 0
    return {
      count: this.count,
      mean: empty ? 0 : round(this.histogram.mean / 1000),
      min: empty ? 0 : round(this.histogram.minNonZeroValue / 1000),
      p50: round(this.percentile(50)),
      p90: round(this.percentile(90)),
      p95: round(this.percentile(95)),
      p99: round(this.percentile(99)),
      p999: round(this.percentile(99.9)),
      max: empty ? 0 : round(this.histogram.maxValue / 1000),
    }
  }

  /** Compact, lossless form for posting between worker threads. */
  encode(): string {
    return hdr.encodeIntoCompressedBase64(this.histogram)
  }

  static decode(encoded: string): LatencyHistogram {
    return new LatencyHistogram(hdr.decodeFromCompressedBase64(encoded, 32, false))
  }
}

/** Milliseconds to microsecond precision, so JSON stays readable. */
export function round(ms: number): number {
  return Math.round(ms * 1000) / 1000
}
