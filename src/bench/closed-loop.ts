import { performance } from 'node:perf_hooks'
import type { LoadSender } from './load-sender.js'
import type { Phase } from './phase.js'
import type { StepRecorder } from './step-recorder.js'

/**
 * `concurrency` loops, each starting its next call as soon as the previous one settles, until the
 * phase ends. `call` learns whether it is measured (it started inside the phase's window, within its
 * request budget) or warm-up. The engine under `helix bench` closed-loop steps and the bench/ scripts.
 */
export async function closedLoop(
  concurrency: number,
  phase: Phase,
  call: (lane: number, start: number, measured: boolean) => Promise<void>,
): Promise<void> {
  let measuredSends = 0
  const loop = async (_: unknown, lane: number) => {
    for (;;) {
      const start = performance.now()
      if (start >= phase.measureEnd) return
      const measured = start >= phase.measureStart
      if (measured && measuredSends >= phase.requests) return
      if (measured) measuredSends++
      await call(lane, start, measured)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop))
}

/**
 * Closed loop: `concurrency` clients, each sending its next request as soon as the previous answer
 * arrives. Throughput is what the server sustains at that concurrency; queueing shows up as latency.
 * Returns the performance.now() time of the last measured completion.
 */
export async function runClosedLoop(
  client: LoadSender,
  concurrency: number,
  phase: Phase,
  recorder: StepRecorder,
): Promise<number> {
  let lastCompletion = phase.measureStart
  await closedLoop(concurrency, phase, async (lane, start, measured) => {
    const sample = await client.send(start, lane)
    if (!measured) return
    const end = performance.now()
    lastCompletion = Math.max(lastCompletion, end)
    recorder.record({ ...sample, at: end - phase.measureStart })
  })
  return lastCompletion
}
