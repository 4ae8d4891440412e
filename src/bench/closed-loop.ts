import { performance } from 'node:perf_hooks'
import type { LoadClient } from './load-client.js'
import type { Phase } from './phase.js'
import type { StepRecorder } from './step-recorder.js'

/**
 * Closed loop: `concurrency` clients, each sending its next request as soon as the previous answer
 * arrives. Throughput is what the server sustains at that concurrency; queueing shows up as latency.
 * Returns the performance.now() time of the last measured completion.
 */
export async function runClosedLoop(
  client: LoadClient,
  concurrency: number,
  phase: Phase,
  recorder: StepRecorder,
): Promise<number> {
  let measuredSends = 0
  let lastCompletion = phase.measureStart
  const worker = async (_: unknown, lane: number) => {
    for (;;) {
      const start = performance.now()
      if (start >= phase.measureEnd) return
      const measured = start >= phase.measureStart
      if (measured && measuredSends >= phase.requests) return
      if (measured) measuredSends++
      const sample = await client.send(start, lane)
      if (!measured) continue
      const end = performance.now()
      lastCompletion = Math.max(lastCompletion, end)
      recorder.record({ ...sample, at: end - phase.measureStart })
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return lastCompletion
}
