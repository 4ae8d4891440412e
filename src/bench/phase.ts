import type { StopRule } from './types.js'

/**
 * The measured window of a step on this thread's performance.now() timeline. Requests that start
 * before `measureStart` are warm-up and not recorded; a duration rule stops issuing at `measureEnd`,
 * a request rule after `requests` measured sends.
 */
export interface Phase {
  measureStart: number
  measureEnd: number
  requests: number
}

export function phaseFor(measureStart: number, stop: StopRule): Phase {
  return 'durationMs' in stop
    ? { measureStart, measureEnd: measureStart + stop.durationMs, requests: Number.POSITIVE_INFINITY }
    : { measureStart, measureEnd: Number.POSITIVE_INFINITY, requests: stop.requests }
}
