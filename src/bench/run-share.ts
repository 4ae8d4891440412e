import { performance } from 'node:perf_hooks'
import { toLocal } from './clock.js'
import { runClosedLoop } from './closed-loop.js'
import { GrpcLoadClient } from './grpc-load-client.js'
import { LoadClient } from './load-client.js'
import type { LoadSender } from './load-sender.js'
import { runOpenLoop } from './open-loop.js'
import { phaseFor } from './phase.js'
import { type EncodedRecorder, StepRecorder } from './step-recorder.js'
import { isGrpcPlan, type LoadPlan, type LoadShape, type StopRule } from './types.js'

/** One thread's part of a step: its share of the clients (or of the rate) and of the requests. */
export interface ShareTask {
  plan: LoadPlan
  load: LoadShape
  stop: StopRule
  /** Epoch milliseconds at which measuring starts; load runs from now on, the time before is warm-up. */
  measureStartEpoch: number
  connections: number
  timeoutMs: number
}

export interface ShareProgress {
  successes: number
  errors: number
  p99: number
}

export interface ShareOutcome {
  recorder: StepRecorder
  /** Epoch milliseconds of the last measured completion. */
  lastCompletionEpoch: number
}

// How often a running share reports progress (the live line redraws at this pace).
const PROGRESS_EVERY_MS = 250

/** The sender of a plan: HTTP/1.1 lanes or gRPC calls and streams. */
function openSender(plan: LoadPlan, lanes: number, timeoutMs: number): LoadSender {
  return isGrpcPlan(plan)
    ? new GrpcLoadClient(plan, lanes, timeoutMs)
    : new LoadClient(plan, lanes, timeoutMs)
}

/** Runs this thread's share of a step: warm-up, then the measured window, with periodic progress. */
export async function runShare(
  task: ShareTask,
  onProgress?: (p: ShareProgress) => void,
): Promise<ShareOutcome> {
  const lanes = task.load.mode === 'closed' ? task.load.concurrency : task.connections
  const client = openSender(task.plan, lanes, task.timeoutMs)
  const recorder = new StepRecorder()
  const phase = phaseFor(toLocal(task.measureStartEpoch), task.stop)
  const timer = onProgress
    ? setInterval(
        () =>
          onProgress({
            successes: recorder.successes,
            errors: recorder.errorCount,
            p99: recorder.latency.percentile(99),
          }),
        PROGRESS_EVERY_MS,
      )
    : undefined
  try {
    const last =
      task.load.mode === 'closed'
        ? await runClosedLoop(client, task.load.concurrency, phase, recorder)
        : await runOpenLoop(client, task.load.rate, phase, recorder, performance.now())
    return { recorder, lastCompletionEpoch: last + performance.timeOrigin }
  } finally {
    clearInterval(timer)
    await client.close()
  }
}

/** Messages between the main thread and a worker thread. */
export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'progress'; progress: ShareProgress }
  | { type: 'done'; recorder: EncodedRecorder; lastCompletionEpoch: number }
