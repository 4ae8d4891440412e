import type { ModelIndexEntry } from '../infer/types.js'
import { bucketQuantile, type HistogramBucket, histogramDelta } from './histogram.js'
import type { ServedTotals } from './metric-readers.js'

/**
 * Alert conditions the daemon evaluates on itself. Where a condition is also a rule of the generated
 * monitoring/rules.yml (`helix render monitoring`) it has that rule's name and threshold, so an
 * operator sees one name whether Alertmanager or the daemon reports it.
 */
export interface Alert {
  name: string
  severity: 'critical' | 'warning'
  summary: string
  description: string
  /** What the alert is about: model, version, cert. */
  labels: Record<string, string>
  /** The measured value the threshold was compared with. */
  value: number
  threshold: number
  /** The span a rate or ratio covers; 0 for a state read now. */
  windowSeconds: number
}

/**
 * The thresholds of the generated rules (rulesValues in provision/render/monitoring-values.ts); the
 * certificate warning takes tls.warn_days from helix.yaml as those rules do.
 */
export const ALERT_THRESHOLDS = {
  /** HelixHighLatencyP99: p99 request duration above this many seconds. */
  latencyP99Seconds: 0.5,
  /** HelixHighErrorRate: share of requests answered with a server error. */
  errorRatio: 0.05,
  /** HelixInferenceQueueSaturated: share of a model version's queue in use. */
  queueSaturation: 0.9,
  /** HelixCertificateExpiringCritical: days left. */
  certCriticalDays: 7,
} as const

/** The rules' rate() window. */
export const ALERT_WINDOW_MS = 5 * 60_000

export interface AlertInputs {
  models: readonly ModelIndexEntry[]
  /** Seconds left per certificate role (helix_cert_expiry_seconds). */
  certificates: readonly { cert: string; secondsLeft: number }[]
  /** tls.warn_days of helix.yaml. */
  certWarnDays: number
  /** Requests, server errors and latency over the window (see ServedWindow). */
  served?: { requests: number; serverErrors: number; latency: { buckets: HistogramBucket[]; count: number } }
  windowSeconds: number
  /** The gRPC face is draining: the daemon is going away. */
  draining?: boolean
}

/** Reasons of versions that are not loaded on purpose (unloaded, evicted, models.load none or lazy). */
const INTENDED_UNAVAILABLE = /^(unloaded|not loaded)/

const days = (seconds: number) => seconds / 86_400
const round = (n: number, digits = 1) => Number(n.toFixed(digits))

/** Every alert that holds now; an empty list when all is well. Sorted critical first, then by name. */
export function evaluateAlerts(inputs: AlertInputs): Alert[] {
  const alerts: Alert[] = []
  for (const m of inputs.models) {
    const labels = { model: m.name, ...(m.version ? { version: m.version } : {}) }
    if (m.state === 'UNAVAILABLE' && !INTENDED_UNAVAILABLE.test(m.reason ?? '')) {
      alerts.push({
        name: 'HelixModelNotReady',
        severity: 'critical',
        summary: `model ${m.name}${m.version ? ` version ${m.version}` : ''} is not ready`,
        description: `It is UNAVAILABLE: ${m.reason ?? 'no reason given'}. Requests for it get 503; fix the model and load it again.`,
        labels,
        value: 0,
        threshold: 1,
        windowSeconds: 0,
      })
    }
    if (m.queueCapacity && m.queueDepth !== undefined) {
      const used = m.queueDepth / m.queueCapacity
      if (used > ALERT_THRESHOLDS.queueSaturation) {
        alerts.push({
          name: 'HelixInferenceQueueSaturated',
          severity: 'warning',
          summary: `inference queue of ${m.name} is over ${ALERT_THRESHOLDS.queueSaturation * 100}% full`,
          description: `${m.queueDepth} of ${m.queueCapacity} places are taken; requests for ${m.name} will soon get 429: add instances or GPUs, or raise max_batch_size.`,
          labels,
          value: used,
          threshold: ALERT_THRESHOLDS.queueSaturation,
          windowSeconds: 0,
        })
      }
    }
  }
  for (const { cert, secondsLeft } of inputs.certificates) {
    const left = days(secondsLeft)
    const critical = left < ALERT_THRESHOLDS.certCriticalDays
    if (!critical && left >= inputs.certWarnDays) continue
    const threshold = critical ? ALERT_THRESHOLDS.certCriticalDays : inputs.certWarnDays
    alerts.push({
      name: critical ? 'HelixCertificateExpiringCritical' : 'HelixCertificateExpiringSoon',
      severity: critical ? 'critical' : 'warning',
      summary: `helix ${cert} certificate expires in under ${threshold} days`,
      description:
        secondsLeft <= 0
          ? `It expired ${round(-left)} days ago. Run \`helix certs rotate\` now.`
          : `It expires in ${round(left)} days. Run \`helix certs rotate\`${critical ? ' now' : ' and reload nginx'}.`,
      labels: { cert },
      value: secondsLeft,
      threshold: threshold * 86_400,
      windowSeconds: 0,
    })
  }
  const served = inputs.served
  if (served && served.requests > 0) {
    const ratio = served.serverErrors / served.requests
    if (ratio > ALERT_THRESHOLDS.errorRatio) {
      alerts.push({
        name: 'HelixHighErrorRate',
        severity: 'critical',
        summary: `more than ${ALERT_THRESHOLDS.errorRatio * 100}% of helix requests fail with a server error`,
        description: `${served.serverErrors} of ${served.requests} requests (HTTP 5xx, or gRPC codes that stand for one) over the last ${Math.round(inputs.windowSeconds)} s.`,
        labels: {},
        value: ratio,
        threshold: ALERT_THRESHOLDS.errorRatio,
        windowSeconds: inputs.windowSeconds,
      })
    }
  }
  if (served && served.latency.count > 0) {
    const p99 = bucketQuantile(0.99, served.latency.buckets, served.latency.count)
    if (p99 > ALERT_THRESHOLDS.latencyP99Seconds) {
      alerts.push({
        name: 'HelixHighLatencyP99',
        severity: 'warning',
        summary: `helix p99 latency above ${ALERT_THRESHOLDS.latencyP99Seconds} s`,
        description: `The 99th percentile of request duration is ${round(p99, 3)} s over the last ${Math.round(inputs.windowSeconds)} s.`,
        labels: {},
        value: p99,
        threshold: ALERT_THRESHOLDS.latencyP99Seconds,
        windowSeconds: inputs.windowSeconds,
      })
    }
  }
  if (inputs.draining) {
    alerts.push({
      name: 'HelixDraining',
      severity: 'warning',
      summary: 'this helix daemon is shutting down',
      description:
        'It finishes the calls it has and takes no new ones; clients should move to another instance.',
      labels: {},
      value: 1,
      threshold: 1,
      windowSeconds: 0,
    })
  }
  return alerts.sort(
    (a, b) =>
      Number(b.severity === 'critical') - Number(a.severity === 'critical') ||
      a.name.localeCompare(b.name) ||
      JSON.stringify(a.labels).localeCompare(JSON.stringify(b.labels)),
  )
}

/**
 * Served totals remembered between evaluations, so the ratio and latency alerts cover about the last
 * five minutes as the rules' rate() does. The baseline is the newest reading at least the window old;
 * until there is one, the daemon's start (all counters at zero), so the first evaluations cover the
 * daemon's whole life. Readings are kept at least a thirtieth of the window apart, so a fast poller
 * stores few.
 */
export class ServedWindow {
  private readings: { at: number; totals: ServedTotals }[] = []

  constructor(
    private readonly startedAt = Date.now(),
    private readonly windowMs = ALERT_WINDOW_MS,
  ) {}

  /** Adds a reading taken at `now` and returns what happened since the baseline, and over how long. */
  advance(
    totals: ServedTotals,
    now = Date.now(),
  ): { served: NonNullable<AlertInputs['served']>; windowSeconds: number } {
    const cutoff = now - this.windowMs
    let baseline: { at: number; totals: ServedTotals } | undefined
    for (const r of this.readings) if (r.at <= cutoff) baseline = r
    if (baseline) this.readings = this.readings.filter((r) => r.at >= (baseline?.at ?? 0))
    const newest = this.readings.at(-1)
    if (!newest || now - newest.at >= this.windowMs / 30) this.readings.push({ at: now, totals })
    const before = baseline?.totals
    const latency = histogramDelta(totals.latency, before?.latency)
    return {
      served: {
        requests: totals.requests - (before?.requests ?? 0),
        serverErrors: totals.serverErrors - (before?.serverErrors ?? 0),
        latency: { buckets: latency.buckets, count: latency.count },
      },
      windowSeconds: Math.max(0, (now - (baseline?.at ?? this.startedAt)) / 1000),
    }
  }
}
