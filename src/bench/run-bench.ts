import { runStep, type StepProgress } from './run-step.js'
import { buildPlan } from './targets/build-plan.js'
import { grpcPlan } from './targets/grpc.js'
import type { TargetOptions } from './targets/target-options.js'
import {
  type BenchResult,
  isGrpcTarget,
  type LoadPlan,
  type LoadShape,
  type StepPlan,
  type StepResult,
  type StopRule,
} from './types.js'

export interface BenchOptions {
  target: TargetOptions
  /** Closed loop steps (concurrent clients); ignored when `rates` is given. */
  concurrency: number[]
  /** Open loop steps (requests per second, Poisson arrivals). */
  rates?: number[]
  stop: StopRule
  warmupMs: number
  /** Open loop: connections the arrivals are dealt over. */
  connections: number
  timeoutMs: number
  workers: number
  onProgress?: (p: StepProgress) => void
  onStep?: (step: StepResult) => void
}

// Above this share of its threads' CPU, the generator itself limits the numbers it reports.
const SATURATED_CPU = 0.9

/** Checks the target once, then runs each step in turn and collects the results with warnings. */
export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const grpc = isGrpcTarget(options.target.kind)
  const { plan, url } = grpc
    ? await grpcPlan(options.target)
    : { ...(await buildPlan(options.target)), url: options.target.url }
  const startedAt = new Date().toISOString()
  const steps = await runSteps(plan, options)
  return {
    target: options.target.kind,
    url,
    ...(options.target.model ? { model: options.target.model } : {}),
    // gRPC targets send raw_input_contents: the binary tensor form of the protocol.
    binary: grpc || (options.target.kind === 'kserve' && options.target.binary),
    startedAt,
    workers: options.workers,
    steps,
    warnings: steps.flatMap((s) => stepWarnings(s, options.workers)),
  }
}

/** Runs the steps of a plan that is already known to work (also used by --tune per candidate). */
export async function runSteps(plan: LoadPlan, options: Omit<BenchOptions, 'target'>): Promise<StepResult[]> {
  const loads: LoadShape[] = options.rates?.length
    ? options.rates.map((rate) => ({ mode: 'open', rate }))
    : options.concurrency.map((concurrency) => ({ mode: 'closed', concurrency }))
  const steps: StepResult[] = []
  for (const load of loads) {
    const step: StepPlan = {
      load,
      stop: options.stop,
      warmupMs: options.warmupMs,
      connections: options.connections,
      timeoutMs: options.timeoutMs,
      workers: options.workers,
    }
    const result = await runStep(plan, step, options.onProgress)
    options.onStep?.(result)
    steps.push(result)
  }
  return steps
}

/** What a user should know about a step before trusting its numbers. */
export function stepWarnings(step: StepResult, workers: number): string[] {
  const warnings: string[] = []
  const threads = Math.max(1, workers)
  if (step.clientCpu >= SATURATED_CPU * threads) {
    warnings.push(
      `${step.label}: the load generator used ${Math.round(step.clientCpu * 100)}% of ${threads === 1 ? 'a core' : `${threads} cores`}, so it may be the bottleneck; run with --workers ${threads + 1} (or from another machine).`,
    )
  }
  if (step.errorCount > 0) {
    const kinds = Object.entries(step.errors)
      .map(([kind, n]) => `${kind}: ${n}`)
      .join(', ')
    warnings.push(`${step.label}: ${step.errorCount} of ${step.requests} requests failed (${kinds}).`)
  }
  if (step.mode === 'open' && step.rate !== undefined && step.throughput < step.rate * 0.9) {
    warnings.push(
      `${step.label}: the server answered ${step.throughput} req/s, below the offered ${step.rate} req/s; it is saturated and latency includes queueing.`,
    )
  }
  return warnings
}
