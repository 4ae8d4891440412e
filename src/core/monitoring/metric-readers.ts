import type { Counter, Histogram } from 'prom-client'
import type { ModelIndexEntry, ModelState } from '../infer/types.js'
import type { HelixMetrics } from '../metrics.js'
import { type HistogramBucket, type HistogramSummary, summarizeHistogram } from './histogram.js'

/**
 * Readers of the daemon's Prometheus registry (HelixMetrics): the same numbers /metrics exposes,
 * grouped the way an operator asks for them. Counters count since the daemon started.
 */

/** Inference requests with one outcome (success or an error code) through one protocol. */
export interface OutcomeCount {
  status: string
  protocol: string
  count: number
}

export interface VersionStats {
  /** "" for requests that failed before a version was chosen (unknown version, model not ready). */
  version: string
  /** The version's state now; absent for a version the repository no longer has. */
  state?: ModelState
  requests: number
  successes: number
  failures: number
  outcomes: OutcomeCount[]
  queueSeconds: HistogramSummary
  computeSeconds: HistogramSummary
}

export interface ModelStats {
  name: string
  requests: number
  successes: number
  failures: number
  outcomes: OutcomeCount[]
  versions: VersionStats[]
  /** Size of the batch each request ran in (the metric has no version label). */
  batchSize: HistogramSummary
}

/** Calls answered through one face: all, those that failed, and those that failed on the server's side. */
export interface ProtocolRequests {
  protocol: 'rest' | 'grpc'
  requests: number
  /** HTTP 4xx/5xx, gRPC anything but OK. */
  failures: number
  /** HTTP 5xx, gRPC codes that stand for a 5xx (INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED, ...). */
  serverErrors: number
}

/** Inference requests through one face. */
export interface ProtocolInferences {
  protocol: string
  requests: number
  successes: number
  failures: number
}

export interface Traffic {
  requests: ProtocolRequests[]
  inferences: ProtocolInferences[]
}

/** How the gRPC face's status names read: which stand for a server error, which calls are streams. */
export interface GrpcClassifier {
  isServerError(code: string): boolean
  /** Streams last as long as the client keeps them, so their duration is no latency. */
  isStream(method: string): boolean
}

interface HistogramReading {
  labels: Record<string, string>
  buckets: HistogramBucket[]
  sum: number
  count: number
}

const labelText = (labels: Record<string, string | number | undefined>) =>
  Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, String(v ?? '')]))

async function counterValues<T extends string>(
  counter: Counter<T>,
): Promise<{ labels: Record<string, string>; value: number }[]> {
  return (await counter.get()).values.map((v) => ({ labels: labelText(v.labels), value: v.value }))
}

/** Each label set of a histogram (without `le`) with its cumulative buckets, sum and count. */
async function histogramReadings<T extends string>(histogram: Histogram<T>): Promise<HistogramReading[]> {
  const byLabels = new Map<string, HistogramReading>()
  for (const value of (await histogram.get()).values) {
    const { le, ...rest } = labelText(value.labels)
    const key = JSON.stringify(Object.entries(rest).sort())
    let reading = byLabels.get(key)
    if (!reading) {
      reading = { labels: rest, buckets: [], sum: 0, count: 0 }
      byLabels.set(key, reading)
    }
    if (value.metricName?.endsWith('_bucket')) {
      reading.buckets.push({ le: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), count: value.value })
    } else if (value.metricName?.endsWith('_sum')) reading.sum = value.value
    else if (value.metricName?.endsWith('_count')) reading.count = value.value
  }
  return [...byLabels.values()]
}

/** Several readings of histograms with the same bucket bounds, added up. */
export function mergeReadings(readings: readonly Omit<HistogramReading, 'labels'>[]): {
  buckets: HistogramBucket[]
  sum: number
  count: number
} {
  const buckets = new Map<number, number>()
  let sum = 0
  let count = 0
  for (const r of readings) {
    for (const b of r.buckets) buckets.set(b.le, (buckets.get(b.le) ?? 0) + b.count)
    sum += r.sum
    count += r.count
  }
  return {
    buckets: [...buckets].map(([le, n]) => ({ le, count: n })).sort((a, b) => a.le - b.le),
    sum,
    count,
  }
}

const summaryOf = (readings: readonly HistogramReading[]) => {
  const merged = mergeReadings(readings)
  return summarizeHistogram(merged.buckets, merged.sum, merged.count)
}

function tally(outcomes: readonly OutcomeCount[]): { requests: number; successes: number; failures: number } {
  const requests = outcomes.reduce((n, o) => n + o.count, 0)
  const successes = outcomes.filter((o) => o.status === 'success').reduce((n, o) => n + o.count, 0)
  return { requests, successes, failures: requests - successes }
}

/** Outcomes added up by status and protocol (over versions), sorted for stable answers. */
function combine(outcomes: readonly OutcomeCount[]): OutcomeCount[] {
  const sums = new Map<string, OutcomeCount>()
  for (const o of outcomes) {
    const key = `${o.status}\u0000${o.protocol}`
    const seen = sums.get(key)
    if (seen) seen.count += o.count
    else sums.set(key, { ...o })
  }
  return [...sums.values()].sort(
    (a, b) => a.status.localeCompare(b.status) || a.protocol.localeCompare(b.protocol),
  )
}

const byVersionText = (a: string, b: string) =>
  a === '' ? 1 : b === '' ? -1 : Number(a) - Number(b) || a.localeCompare(b)

/**
 * Per model and version: inference outcomes by protocol, queue and compute time, batch sizes. Models
 * are those the repository knows (`index`); a version is listed when the repository has it or the
 * counters saw it.
 */
export async function readModelStats(
  metrics: HelixMetrics,
  index: readonly ModelIndexEntry[],
  filter: { name?: string; version?: string } = {},
): Promise<ModelStats[]> {
  const [requests, queue, compute, batches] = await Promise.all([
    counterValues(metrics.inferenceRequests),
    histogramReadings(metrics.inferenceQueue),
    histogramReadings(metrics.inferenceCompute),
    histogramReadings(metrics.batchSize),
  ])
  const names = [...new Set(index.map((e) => e.name))].filter((n) => !filter.name || n === filter.name)
  return names.sort().map((name) => {
    const states = new Map(index.filter((e) => e.name === name && e.version).map((e) => [e.version, e.state]))
    const outcomes = requests
      .filter((r) => r.labels.model === name)
      .map((r) => ({
        version: r.labels.version,
        status: r.labels.status,
        protocol: r.labels.protocol,
        count: r.value,
      }))
    const versions = new Set([
      ...states.keys(),
      ...outcomes.map((o) => o.version),
      ...queue.filter((q) => q.labels.model === name).map((q) => q.labels.version),
    ])
    const versionStats = [...versions]
      .filter((v) => filter.version === undefined || v === filter.version)
      .sort(byVersionText)
      .map((version): VersionStats => {
        const mine = combine(
          outcomes
            .filter((o) => o.version === version)
            .map(({ status, protocol, count }) => ({ status, protocol, count })),
        )
        const state = states.get(version)
        const ofVersion = (r: HistogramReading) => r.labels.model === name && r.labels.version === version
        return {
          version,
          ...(state ? { state } : {}),
          ...tally(mine),
          outcomes: mine,
          queueSeconds: summaryOf(queue.filter(ofVersion)),
          computeSeconds: summaryOf(compute.filter(ofVersion)),
        }
      })
    const all = combine(outcomes.map(({ status, protocol, count }) => ({ status, protocol, count })))
    return {
      name,
      ...tally(all),
      outcomes: all,
      versions: versionStats,
      batchSize: summaryOf(batches.filter((b) => b.labels.model === name)),
    }
  })
}

/** Requests per face (REST routes, gRPC calls) and inferences per protocol, since the daemon started. */
export async function readTraffic(metrics: HelixMetrics, grpc: GrpcClassifier): Promise<Traffic> {
  const [http, calls, inferences] = await Promise.all([
    counterValues(metrics.httpRequests),
    counterValues(metrics.grpcRequests),
    counterValues(metrics.inferenceRequests),
  ])
  const sum = (values: { value: number }[]) => values.reduce((n, v) => n + v.value, 0)
  const protocols = new Set(['rest', 'grpc', ...inferences.map((i) => i.labels.protocol)])
  return {
    requests: [
      {
        protocol: 'rest',
        requests: sum(http),
        failures: sum(http.filter((h) => Number(h.labels.status) >= 400)),
        serverErrors: sum(http.filter((h) => Number(h.labels.status) >= 500)),
      },
      {
        protocol: 'grpc',
        requests: sum(calls),
        failures: sum(calls.filter((c) => c.labels.code !== 'OK')),
        serverErrors: sum(calls.filter((c) => grpc.isServerError(c.labels.code))),
      },
    ],
    inferences: [...protocols].sort().map((protocol) => {
      const mine = inferences.filter((i) => i.labels.protocol === protocol)
      const successes = sum(mine.filter((i) => i.labels.status === 'success'))
      const requests = sum(mine)
      return { protocol, requests, successes, failures: requests - successes }
    }),
  }
}

/** What the error-ratio and latency alerts compare over a window: totals since the daemon started. */
export interface ServedTotals {
  requests: number
  serverErrors: number
  /** Request duration of HTTP requests and unary gRPC calls (the two histograms share their buckets). */
  latency: { buckets: HistogramBucket[]; sum: number; count: number }
}

export async function readServedTotals(metrics: HelixMetrics, grpc: GrpcClassifier): Promise<ServedTotals> {
  const [traffic, http, calls] = await Promise.all([
    readTraffic(metrics, grpc),
    histogramReadings(metrics.requestDuration),
    histogramReadings(metrics.grpcDuration),
  ])
  return {
    requests: traffic.requests.reduce((n, p) => n + p.requests, 0),
    serverErrors: traffic.requests.reduce((n, p) => n + p.serverErrors, 0),
    latency: mergeReadings([...http, ...calls.filter((c) => !grpc.isStream(c.labels.method))]),
  }
}

/** Seconds until each helix certificate expires, as helix_cert_expiry_seconds reports them. */
export async function readCertificateExpiry(
  metrics: HelixMetrics,
): Promise<{ cert: string; secondsLeft: number }[]> {
  const gauge = metrics.registry.getSingleMetric('helix_cert_expiry_seconds')
  if (!gauge) return []
  const { values } = await gauge.get()
  return values
    .map((v) => ({ cert: String(v.labels.cert ?? ''), secondsLeft: v.value }))
    .sort((a, b) => a.cert.localeCompare(b.cert))
}
