import type { LoadShape, StopRule } from './types.js'

/**
 * Splits a step across `parts` threads: clients and requests as evenly as integers allow (a thread
 * with nothing to do is dropped), the rate in equal parts — a sum of independent Poisson processes
 * is a Poisson process of the summed rate.
 */
export function splitLoad(
  load: LoadShape,
  stop: StopRule,
  parts: number,
): { load: LoadShape; stop: StopRule }[] {
  const share = (total: number, i: number) => Math.floor(total / parts) + (i < total % parts ? 1 : 0)
  const out: { load: LoadShape; stop: StopRule }[] = []
  for (let i = 0; i < parts; i++) {
    const l: LoadShape =
      load.mode === 'closed'
        ? { mode: 'closed', concurrency: share(load.concurrency, i) }
        : { mode: 'open', rate: load.rate / parts }
    const s: StopRule = 'requests' in stop ? { requests: share(stop.requests, i) } : stop
    if ((l.mode === 'closed' && l.concurrency === 0) || ('requests' in s && s.requests === 0)) continue
    out.push({ load: l, stop: s })
  }
  return out
}
