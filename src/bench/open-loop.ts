import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { LoadSender } from './load-sender.js'
import type { Phase } from './phase.js'
import { poissonGapsMs } from './poisson.js'
import type { StepRecorder } from './step-recorder.js'

// Yield to the event loop after this many back-to-back sends so responses are read even when the
// schedule has fallen behind (a slow server) and many arrivals are due at once.
const SENDS_PER_TICK = 64
// Timers fire up to ~1 ms late, which would be charged to the server as latency: sleep until this
// close to the intended time, then yield with setImmediate (still serving I/O) until it arrives.
const TIMER_SLACK_MS = 1.5

/**
 * Open loop: requests arrive on a Poisson schedule at `rate` per second whether or not earlier ones
 * have been answered, as independent users do. Latency is measured from each request's intended
 * send time, so a stalled server is charged for every request it delayed (coordinated-omission
 * correction, as wrk2 and perf_analyzer do). Arrivals are dealt round-robin over the client's
 * connections. Returns the time of the last measured completion.
 */
export async function runOpenLoop(
  client: LoadSender,
  rate: number,
  phase: Phase,
  recorder: StepRecorder,
  startAt: number,
  random?: () => number,
): Promise<number> {
  const gaps = poissonGapsMs(rate, random)
  const inFlight = new Set<Promise<void>>()
  let lastCompletion = phase.measureStart
  let measuredSends = 0
  let intended = startAt
  let burst = 0
  let lane = 0
  for (;;) {
    if (intended >= phase.measureEnd) break
    const measured = intended >= phase.measureStart
    if (measured && measuredSends >= phase.requests) break
    const now = performance.now()
    if (intended > now) {
      burst = 0
      if (intended - now > TIMER_SLACK_MS) await sleep(intended - now - TIMER_SLACK_MS)
      else await new Promise((resolve) => setImmediate(resolve))
      continue
    }
    if (measured) measuredSends++
    const from = intended
    const done = client.send(from, lane++).then((sample) => {
      inFlight.delete(done)
      if (!measured) return
      const end = performance.now()
      lastCompletion = Math.max(lastCompletion, end)
      recorder.record({ ...sample, at: end - phase.measureStart })
    })
    inFlight.add(done)
    intended += gaps.next().value as number
    if (++burst >= SENDS_PER_TICK) {
      burst = 0
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  await Promise.all(inFlight)
  return lastCompletion
}
