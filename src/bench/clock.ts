import { performance } from 'node:perf_hooks'

/**
 * Wall-clock milliseconds with sub-millisecond precision, comparable across worker threads
 * (each thread's performance.now() has its own origin; timeOrigin + now() does not).
 */
export function epochNow(): number {
  return performance.timeOrigin + performance.now()
}

/** Converts an epoch time to this thread's performance.now() timeline. */
export function toLocal(epochMs: number): number {
  return epochMs - performance.timeOrigin
}
