import { readFileSync } from 'node:fs'
import { closedLoop as loop } from '../../dist/bench/closed-loop.js'
import { phaseFor } from '../../dist/bench/phase.js'

// Closed-loop throughput measurement shared by bench scripts, on helix bench's own loop engine.

/**
 * Runs `task` back to back in `concurrency` loops for `durationMs` (after `warmupMs` whose results
 * are discarded) and returns { items, seconds, itemsPerSecond, errors }. `task` resolves with the
 * number of items it processed (it is given the index of its loop); `onMeasureStart` is called when the warm-up ends.
 */
export async function closedLoop(
  task,
  { concurrency = 1, durationMs = 5000, warmupMs = 1000, onMeasureStart } = {},
) {
  let items = 0
  let errors = 0
  let firstError
  let started = 0
  const measureStart = performance.now() + warmupMs
  const phase = phaseFor(measureStart, { durationMs })
  const warmupTimer = setTimeout(() => {
    started = performance.now()
    onMeasureStart?.()
  }, warmupMs)
  await loop(concurrency, phase, async (lane, _start, measured) => {
    try {
      const n = await task(lane)
      if (measured) items += n
    } catch (err) {
      if (measured) errors++
      firstError ??= err
    }
  })
  clearTimeout(warmupTimer)
  const seconds = (performance.now() - (started || measureStart)) / 1000
  return { items, seconds, itemsPerSecond: items / seconds, errors, firstError }
}

/** Formats a number of items per second for a table. */
export function rate(value) {
  return `${value.toFixed(0).padStart(7)} items/s`
}

/**
 * CPU seconds (user + system) a process has used so far, read from /proc (Linux); undefined
 * elsewhere. CPU per item is robust where wall-clock throughput is at the mercy of other load.
 */
export function processCpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // utime and stime are fields 14 and 15 of stat(5); fields[0] here is field 3.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return undefined
  }
}

/** USER_HZ: 100 on every Linux this runs on (sysconf is not reachable from Node). */
const CLOCK_TICKS = 100
