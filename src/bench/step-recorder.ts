import { LatencyHistogram, round } from './latency-histogram.js'
import type { LatencySummary, ServerDuration, TimelinePoint } from './types.js'

/** What one finished request contributes to a step. */
export interface Sample {
  /** Milliseconds since the step started measuring, at completion. */
  at: number
  latencyMs: number
  /** undefined for a success; 'status 500', 'ECONNRESET', 'timeout', … otherwise. */
  error?: string
  queueMs?: number
  computeMs?: number
  ttftMs?: number
  interTokenMs?: number[]
  /** The answer's outputs were read and checked (gRPC targets). */
  checked?: boolean
}

/** The recorder in transferable form (histograms base64-encoded) for worker threads. */
export interface EncodedRecorder {
  successes: number
  errors: Record<string, number>
  latency: string
  queue: string
  compute: string
  ttft: string
  interToken: string
  tokens: number
  checked: number
  timeline: { requests: number; errors: number; latency: string }[]
}

interface Bucket {
  requests: number
  errors: number
  latency: LatencyHistogram
}

/** Accumulates samples of one step: latency, errors by kind, server timings, tokens, per-second timeline. */
export class StepRecorder {
  successes = 0
  errors: Record<string, number> = {}
  latency = new LatencyHistogram()
  queue = new LatencyHistogram()
  compute = new LatencyHistogram()
  ttft = new LatencyHistogram()
  interToken = new LatencyHistogram()
  tokens = 0
  /** Successes whose answers were checked. */
  checked = 0
  timeline: Bucket[] = []

  record(sample: Sample): void {
    const bucket = this.bucket(Math.max(0, Math.floor(sample.at / 1000)))
    bucket.requests++
    if (sample.error !== undefined) {
      this.errors[sample.error] = (this.errors[sample.error] ?? 0) + 1
      bucket.errors++
      return
    }
    this.successes++
    if (sample.checked) this.checked++
    this.latency.record(sample.latencyMs)
    bucket.latency.record(sample.latencyMs)
    if (sample.queueMs !== undefined) this.queue.record(sample.queueMs)
    if (sample.computeMs !== undefined) this.compute.record(sample.computeMs)
    if (sample.ttftMs !== undefined) {
      this.ttft.record(sample.ttftMs)
      this.tokens++
    }
    for (const gap of sample.interTokenMs ?? []) {
      this.interToken.record(gap)
      this.tokens++
    }
  }

  get errorCount(): number {
    return Object.values(this.errors).reduce((a, b) => a + b, 0)
  }

  get requests(): number {
    return this.successes + this.errorCount
  }

  merge(other: StepRecorder): void {
    this.successes += other.successes
    for (const [kind, n] of Object.entries(other.errors)) this.errors[kind] = (this.errors[kind] ?? 0) + n
    this.latency.add(other.latency)
    this.queue.add(other.queue)
    this.compute.add(other.compute)
    this.ttft.add(other.ttft)
    this.interToken.add(other.interToken)
    this.tokens += other.tokens
    this.checked += other.checked
    other.timeline.forEach((b, i) => {
      const mine = this.bucket(i)
      mine.requests += b.requests
      mine.errors += b.errors
      mine.latency.add(b.latency)
    })
  }

  encode(): EncodedRecorder {
    return {
      successes: this.successes,
      errors: this.errors,
      latency: this.latency.encode(),
      queue: this.queue.encode(),
      compute: this.compute.encode(),
      ttft: this.ttft.encode(),
      interToken: this.interToken.encode(),
      tokens: this.tokens,
      checked: this.checked,
      timeline: this.timeline.map((b) => ({
        requests: b.requests,
        errors: b.errors,
        latency: b.latency.encode(),
      })),
    }
  }

  static decode(data: EncodedRecorder): StepRecorder {
    const r = new StepRecorder()
    r.successes = data.successes
    r.errors = { ...data.errors }
    r.latency = LatencyHistogram.decode(data.latency)
    r.queue = LatencyHistogram.decode(data.queue)
    r.compute = LatencyHistogram.decode(data.compute)
    r.ttft = LatencyHistogram.decode(data.ttft)
    r.interToken = LatencyHistogram.decode(data.interToken)
    r.tokens = data.tokens
    r.checked = data.checked
    r.timeline = data.timeline.map((b) => ({
      requests: b.requests,
      errors: b.errors,
      latency: LatencyHistogram.decode(b.latency),
    }))
    return r
  }

  serverDuration(h: LatencyHistogram): ServerDuration | undefined {
    return h.count === 0
      ? undefined
      : { count: h.count, mean: h.summary().mean, p99: round(h.percentile(99)) }
  }

  streamSummary():
    | { timeToFirstToken: LatencySummary; interTokenLatency: LatencySummary; tokens: number }
    | undefined {
    return this.ttft.count === 0
      ? undefined
      : {
          timeToFirstToken: this.ttft.summary(),
          interTokenLatency: this.interToken.summary(),
          tokens: this.tokens,
        }
  }

  timelinePoints(): TimelinePoint[] {
    // Every bucket up to the last one exists (bucket() fills gaps), so seconds are contiguous.
    return this.timeline.map((b, second) => ({
      second,
      requests: b.requests,
      errors: b.errors,
      p50: round(b.latency.percentile(50)),
      p99: round(b.latency.percentile(99)),
    }))
  }

  private bucket(second: number): Bucket {
    for (let i = this.timeline.length; i <= second; i++) {
      this.timeline[i] = { requests: 0, errors: 0, latency: new LatencyHistogram() }
    }
    return this.timeline[second]
  }
}
