import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { epochNow } from './clock.js'
import { round } from './latency-histogram.js'
import {
  runShare,
  type ShareOutcome,
  type ShareProgress,
  type ShareTask,
  type WorkerMessage,
} from './run-share.js'
import { splitLoad } from './split-load.js'
import { StepRecorder } from './step-recorder.js'
import { isGrpcPlan, type LoadPlan, type StepPlan, type StepResult } from './types.js'

/** Live numbers of a running step, for the progress line. */
export interface StepProgress {
  label: string
  elapsedMs: number
  successes: number
  errors: number
  p99: number
}

export function stepLabel(step: Pick<StepPlan, 'load'>): string {
  return step.load.mode === 'closed' ? `c=${step.load.concurrency}` : `rate=${step.load.rate}`
}

/**
 * Runs one step (warm-up, then the measured window) in this thread or across worker threads, and
 * summarises it: throughput, latency, errors, server timings, client CPU and a per-second timeline.
 */
export async function runStep(
  plan: LoadPlan,
  step: StepPlan,
  onProgress?: (p: StepProgress) => void,
): Promise<StepResult> {
  const label = stepLabel(step)
  const cpuBefore = process.cpuUsage()
  const wallBefore = epochNow()
  const shares = splitLoad(step.load, step.stop, Math.max(1, step.workers))
  // Each thread opens its part of a gRPC plan's channels.
  const sharePlan: LoadPlan = isGrpcPlan(plan)
    ? { ...plan, channels: Math.max(1, Math.ceil(plan.channels / shares.length)) }
    : plan
  const task = (share: (typeof shares)[number], measureStartEpoch: number): ShareTask => ({
    plan: sharePlan,
    ...share,
    measureStartEpoch,
    connections: Math.max(1, Math.ceil(step.connections / shares.length)),
    timeoutMs: step.timeoutMs,
  })
  let measureStartEpoch = 0
  const report = (progress: ShareProgress[]) => {
    onProgress?.({
      label,
      elapsedMs: Math.max(0, epochNow() - measureStartEpoch),
      successes: progress.reduce((a, p) => a + p.successes, 0),
      errors: progress.reduce((a, p) => a + p.errors, 0),
      p99: Math.max(0, ...progress.map((p) => p.p99)),
    })
  }
  let outcomes: ShareOutcome[]
  if (step.workers === 0) {
    measureStartEpoch = epochNow() + step.warmupMs
    outcomes = [await runShare(task(shares[0], measureStartEpoch), (p) => report([p]))]
  } else {
    const workers = await Promise.all(shares.map(() => startWorker()))
    measureStartEpoch = epochNow() + step.warmupMs
    const progress: ShareProgress[] = shares.map(() => ({ successes: 0, errors: 0, p99: 0 }))
    outcomes = await Promise.all(
      workers.map((w, i) =>
        runInWorker(w, task(shares[i], measureStartEpoch), (p) => {
          progress[i] = p
          if (i === 0) report(progress)
        }),
      ),
    )
  }
  const recorder = new StepRecorder()
  for (const o of outcomes) recorder.merge(o.recorder)
  const lastCompletion = Math.max(...outcomes.map((o) => o.lastCompletionEpoch))
  const durationMs = Math.max(1, lastCompletion - measureStartEpoch)
  const cpu = process.cpuUsage(cpuBefore)
  const wall = epochNow() - wallBefore
  return {
    label,
    mode: step.load.mode,
    ...(step.load.mode === 'closed' ? { concurrency: step.load.concurrency } : { rate: step.load.rate }),
    throughput: round(recorder.successes / (durationMs / 1000)),
    requests: recorder.requests,
    successes: recorder.successes,
    errorCount: recorder.errorCount,
    errors: recorder.errors,
    durationMs: round(durationMs),
    latency: recorder.latency.summary(),
    correctedForCoordinatedOmission: step.load.mode === 'open',
    ...serverPart(recorder),
    ...(recorder.streamSummary() ? { stream: recorder.streamSummary() } : {}),
    ...(isGrpcPlan(plan) ? { checkedAnswers: recorder.checked } : {}),
    clientCpu: Math.round(((cpu.user + cpu.system) / 1000 / wall) * 100) / 100,
    timeline: recorder.timelinePoints(),
  }
}

function serverPart(recorder: StepRecorder): Pick<StepResult, 'server'> {
  const queue = recorder.serverDuration(recorder.queue)
  const compute = recorder.serverDuration(recorder.compute)
  if (!queue && !compute) return {}
  return { server: { ...(queue ? { queue } : {}), ...(compute ? { compute } : {}) } }
}

/** The compiled worker entry; tests run from src/, where only dist/ holds the .js file. */
export function workerEntry(): string {
  const beside = fileURLToPath(new URL('./worker.js', import.meta.url))
  return existsSync(beside) ? beside : beside.replace(/([/\\])src([/\\]bench[/\\]worker\.js)$/, '$1dist$2')
}

function startWorker(): Promise<Worker> {
  const worker = new Worker(workerEntry())
  return new Promise((resolve, reject) => {
    worker.once('error', reject)
    worker.once('message', (m: WorkerMessage) => {
      worker.off('error', reject)
      if (m.type === 'ready') resolve(worker)
    })
  })
}

function runInWorker(
  worker: Worker,
  task: ShareTask,
  onProgress: (p: ShareProgress) => void,
): Promise<ShareOutcome> {
  return new Promise((resolve, reject) => {
    worker.once('error', reject)
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'progress') onProgress(m.progress)
      if (m.type === 'done') {
        void worker.terminate()
        resolve({ recorder: StepRecorder.decode(m.recorder), lastCompletionEpoch: m.lastCompletionEpoch })
      }
    })
    worker.postMessage(task)
  })
}
