import { describe, expect, it } from 'vitest'
import type { ModelIndexEntry } from '../../../src/core/infer/types.js'
import { ALERT_THRESHOLDS, evaluateAlerts, ServedWindow } from '../../../src/core/monitoring/alerts.js'
import type { ServedTotals } from '../../../src/core/monitoring/metric-readers.js'
import { rulesValues } from '../../../src/provision/render/monitoring-values.js'
import { parseConfig } from '../../../src/shared/config.js'

const DAY = 86_400
const ready = (name: string, extra: Partial<ModelIndexEntry> = {}): ModelIndexEntry => ({
  name,
  version: '1',
  state: 'READY',
  queueDepth: 0,
  queueCapacity: 100,
  ...extra,
})
const quiet = { models: [], certificates: [], certWarnDays: 30, windowSeconds: 300 }
const latency = (le: number, count: number) => ({ buckets: [{ le, count }], sum: le * count, count })

describe('evaluateAlerts', () => {
  it('uses the thresholds of the generated rules.yml', () => {
    const rules = rulesValues(parseConfig({ tls: { warn_days: 21 } }))
    expect(ALERT_THRESHOLDS).toMatchObject({
      latencyP99Seconds: rules.latencyP99Seconds,
      errorRatio: rules.errorRatio,
      queueSaturation: rules.queueSaturation,
    })
  })

  it('is empty when all is well', () => {
    expect(
      evaluateAlerts({
        ...quiet,
        models: [ready('a', { queueDepth: 90 }), ready('b', { state: 'UNAVAILABLE', reason: 'unloaded' })],
        certificates: [{ cert: 'server', secondsLeft: 30 * DAY }],
        served: { requests: 100, serverErrors: 5, latency: latency(0.5, 100) },
      }),
    ).toEqual([])
  })

  it('flags failed models (not those unloaded on purpose) and queues over 90%', () => {
    const alerts = evaluateAlerts({
      ...quiet,
      models: [
        ready('full', { queueDepth: 91 }),
        ready('broken', { state: 'UNAVAILABLE', reason: 'onnxruntime could not load it' }),
        ready('lazy', { state: 'UNAVAILABLE', version: '', reason: 'not loaded yet (models.load: lazy)' }),
        ready('evicted', { state: 'UNAVAILABLE', reason: 'unloaded: least recently used' }),
        ready('loading', { state: 'LOADING', queueCapacity: undefined }),
      ],
    })
    expect(alerts.map((a) => [a.name, a.labels.model, a.severity])).toEqual([
      ['HelixModelNotReady', 'broken', 'critical'],
      ['HelixInferenceQueueSaturated', 'full', 'warning'],
    ])
    expect(alerts[0].description).toContain('onnxruntime could not load it')
    expect(alerts[1]).toMatchObject({ value: 0.91, threshold: 0.9, labels: { model: 'full', version: '1' } })
  })

  it('warns tls.warn_days before a certificate expires, and is critical in the last 7 days', () => {
    const alerts = evaluateAlerts({
      ...quiet,
      certWarnDays: 45,
      certificates: [
        { cert: 'ca', secondsLeft: 400 * DAY },
        { cert: 'server', secondsLeft: 44 * DAY },
        { cert: 'client', secondsLeft: 6 * DAY },
        { cert: 'old', secondsLeft: -2 * DAY },
      ],
    })
    expect(alerts.map((a) => [a.name, a.labels.cert, a.threshold / DAY])).toEqual([
      ['HelixCertificateExpiringCritical', 'client', 7],
      ['HelixCertificateExpiringCritical', 'old', 7],
      ['HelixCertificateExpiringSoon', 'server', 45],
    ])
    expect(alerts[1].description).toMatch(/expired 2 days ago/)
  })

  it('flags a server-error ratio over 5% and a p99 over 0.5 s, with their window', () => {
    const alerts = evaluateAlerts({
      ...quiet,
      windowSeconds: 120,
      served: { requests: 100, serverErrors: 6, latency: latency(1, 10) },
    })
    expect(alerts.map((a) => [a.name, a.value, a.windowSeconds])).toEqual([
      ['HelixHighErrorRate', 0.06, 120],
      ['HelixHighLatencyP99', 0.99, 120],
    ])
    expect(
      evaluateAlerts({ ...quiet, served: { requests: 0, serverErrors: 0, latency: latency(1, 0) } }),
    ).toEqual([])
  })

  it('says when the daemon is draining', () => {
    expect(evaluateAlerts({ ...quiet, draining: true }).map((a) => a.name)).toEqual(['HelixDraining'])
  })
})

describe('ServedWindow', () => {
  const totals = (requests: number, serverErrors: number): ServedTotals => ({
    requests,
    serverErrors,
    latency: { buckets: [{ le: 1, count: requests }], sum: requests, count: requests },
  })

  it('covers the daemon life until a reading is a window old, then the last window', () => {
    const start = 1_000_000
    const w = new ServedWindow(start, 300_000)
    expect(w.advance(totals(10, 1), start + 60_000)).toMatchObject({
      served: { requests: 10, serverErrors: 1 },
      windowSeconds: 60,
    })
    // Readings closer together than a thirtieth of the window are not kept.
    w.advance(totals(12, 1), start + 61_000)
    expect(w.advance(totals(30, 4), start + 200_000)).toMatchObject({
      served: { requests: 30, serverErrors: 4 },
      windowSeconds: 200,
    })
    // Now the 60 s reading is more than the window old: it is the baseline.
    const later = w.advance(totals(50, 4), start + 400_000)
    expect(later).toMatchObject({ served: { requests: 40, serverErrors: 3 }, windowSeconds: 340 })
    expect(later.served.latency).toEqual({ buckets: [{ le: 1, count: 40 }], count: 40 })
    // And then the 200 s one.
    expect(w.advance(totals(60, 4), start + 520_000)).toMatchObject({
      served: { requests: 30, serverErrors: 0 },
      windowSeconds: 320,
    })
  })
})
