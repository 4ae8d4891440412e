import { availableParallelism } from 'node:os'
import type * as ort from 'onnxruntime-node'
import { discoverGpus, type GpuDiscovery } from '../gpu/nvidia-smi.js'
import type { GpuReservations } from '../gpu/placement.js'
import type { Tensor, TensorSpec } from '../infer/types.js'
import { type CoreLogger, silentLogger } from '../logger.js'
import type { Backend, BackendDescription, DevicePolicy } from './backend.js'
import { type ProviderAttempt, planProviders, providerFailure } from './execution-provider.js'
import { type OnnxSession, openInlineSession } from './onnx-session.js'
import { specFromMetadata } from './onnx-tensors.js'
import { openWorkerSession } from './worker-session.js'

export interface OnnxBackendOptions {
  modelPath: string
  device: DevicePolicy
  /** Pin to this GPU index (config `gpu`). */
  gpu?: number
  /** Device memory the model may use, in MiB; used for placement (onnxruntime-node has no per-session cap). */
  memoryBudgetMiB?: number
  /** Sessions to open; the scheduler runs up to this many batches at once. */
  instances?: number
  intraOpThreads?: number
  interOpThreads?: number
  /**
   * Run each session in a worker thread, keeping the event loop free while it computes. Default: on
   * for the CPU provider (HTTP work then overlaps compute), off for GPUs.
   */
  workerThreads?: boolean
  /**
   * Let onnxruntime's thread pools busy-wait between runs. Off by default: the spinning threads
   * take the cores the HTTP thread and the clients need, which costs a server far more than the
   * microseconds a sleeping pool needs to wake.
   */
  allowSpinning?: boolean
  /** For log lines: "model:version". */
  label?: string
  logger?: CoreLogger
  /** GPU discovery (nvidia-smi by default); shared by a service so it runs once per load. */
  discoverGpus?: () => Promise<GpuDiscovery>
  reservations?: GpuReservations
}

/** onnxruntime session config entries that stop its thread pools spinning between runs. */
export const NO_SPINNING = {
  session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } },
} as const

/**
 * Sessions of a model run in worker threads on the CPU when its config names no `instances`: two,
 * so one computes while the next batch is handed to the other (a GPU session gets one). On 2 cores
 * PP-OCR cls served 1771 items/s with one instance and 2879 with two, in the same minute
 * (bench/README.md); each instance costs the model's memory again, so big models may want 1.
 */
export const DEFAULT_CPU_INSTANCES = 2

/** Instances when the config names none: DEFAULT_CPU_INSTANCES for worker-thread CPU sessions, else 1. */
export function defaultInstances(offThread: boolean, executionProvider: string): number {
  return offThread && executionProvider === 'cpu' ? DEFAULT_CPU_INSTANCES : 1
}

/**
 * intra-op threads per worker-thread CPU session when the config names none: the cores left once
 * the event loop has one, shared by the instances (rounded up: a core's worth of oversubscription
 * costs less than an idle core). One session spanning every core makes its pool fight the HTTP
 * thread: served on 2 cores, PP-OCR cls took 1.15–1.6 CPU ms per item with one session of two
 * intra-op threads and 0.68–0.95 with one thread (bench/README.md).
 */
export function defaultIntraOpThreads(instances: number, cores: number): number {
  return Math.max(1, Math.ceil((cores - 1) / Math.max(1, instances)))
}

/**
 * What every session of a backend is created with: the attempt's providers, thread counts from the
 * config or the defaults above, and spinning off unless the config allows it.
 */
export function sessionOptionsFor(
  options: Pick<OnnxBackendOptions, 'intraOpThreads' | 'interOpThreads' | 'allowSpinning' | 'instances'>,
  attempt: Pick<ProviderAttempt, 'providers' | 'executionProvider'>,
  offThread: boolean,
  cores: number,
): ort.InferenceSession.SessionOptions {
  const intraOp =
    options.intraOpThreads ||
    (offThread && attempt.executionProvider === 'cpu'
      ? defaultIntraOpThreads(options.instances ?? DEFAULT_CPU_INSTANCES, cores)
      : undefined)
  return {
    executionProviders: attempt.providers,
    graphOptimizationLevel: 'all',
    // Errors only: warnings (e.g. unused initializers) would flood the daemon log on every load.
    logSeverityLevel: 3,
    ...(intraOp ? { intraOpNumThreads: intraOp } : {}),
    ...(options.interOpThreads ? { interOpNumThreads: options.interOpThreads } : {}),
    ...(options.allowSpinning ? {} : { extra: NO_SPINNING }),
  }
}

/** The error a backend throws when it cannot load; `reason` is the one line for UNAVAILABLE. */
export class BackendLoadError extends Error {
  constructor(readonly reason: string) {
    super(reason)
    this.name = 'BackendLoadError'
  }
}

/**
 * onnxruntime-node behind the Backend interface: N sessions of one model file on the provider the
 * device policy allows, each call to `run` going to the least busy session.
 */
export class OnnxBackend implements Backend {
  private sessions: OnnxSession[] = []
  private busy: number[] = []
  private nextSession = 0
  private description?: BackendDescription
  /** Whether the sessions run in worker threads (decided per provider attempt). */
  private offThread = false
  private releaseReservation?: () => void
  private readonly logger: CoreLogger

  constructor(private readonly options: OnnxBackendOptions) {
    this.logger = options.logger ?? silentLogger
  }

  async load(): Promise<void> {
    const { options } = this
    const needsGpus = options.device === 'cuda' || options.device === 'auto'
    const discovery: GpuDiscovery = needsGpus ? await (options.discoverGpus ?? discoverGpus)() : { gpus: [] }
    const plan = planProviders(
      options.device,
      discovery,
      { pinned: options.gpu, memoryBudgetMiB: options.memoryBudgetMiB },
      options.reservations,
    )
    if (plan.refusal) throw new BackendLoadError(plan.refusal)
    let fallbackReason = plan.skippedReason
    let lastError = ''
    for (const attempt of plan.attempts) {
      try {
        this.sessions = await this.openSessions(attempt)
      } catch (err) {
        lastError = providerFailure(attempt, err, discovery)
        if (attempt.executionProvider !== 'cpu' && options.device === 'auto') fallbackReason = lastError
        continue
      }
      if (fallbackReason && options.device === 'auto' && attempt.executionProvider === 'cpu') {
        this.logger.warn(
          { model: options.label, fallback: fallbackReason },
          `device auto: running ${options.label ?? 'model'} on the CPU`,
        )
      }
      this.describeSessions(attempt, attempt.executionProvider === 'cpu' ? fallbackReason : undefined)
      if (attempt.gpu && options.memoryBudgetMiB && options.reservations) {
        this.releaseReservation = options.reservations.reserve(attempt.gpu.index, options.memoryBudgetMiB)
      }
      return
    }
    throw new BackendLoadError(lastError)
  }

  private async openSessions(attempt: ProviderAttempt): Promise<OnnxSession[]> {
    const { options } = this
    this.offThread = options.workerThreads ?? attempt.executionProvider === 'cpu'
    const instances = Math.max(
      1,
      options.instances ?? defaultInstances(this.offThread, attempt.executionProvider),
    )
    const sessionOptions = sessionOptionsFor(options, attempt, this.offThread, availableParallelism())
    const open = this.offThread ? openWorkerSession : openInlineSession
    const sessions: OnnxSession[] = []
    try {
      for (let i = 0; i < instances; i++) {
        sessions.push(await open(options.modelPath, sessionOptions))
      }
    } catch (err) {
      await Promise.all(sessions.map((s) => s.release()))
      throw err
    }
    return sessions
  }

  private describeSessions(attempt: ProviderAttempt, fallbackReason: string | undefined): void {
    const session = this.sessions[0]
    let inputs: TensorSpec[]
    let outputs: TensorSpec[]
    try {
      inputs = session.inputMetadata.map(specFromMetadata)
      outputs = session.outputMetadata.map(specFromMetadata)
    } catch (err) {
      void this.dispose()
      throw new BackendLoadError(`unsupported model signature: ${(err as Error).message}`)
    }
    this.busy = this.sessions.map(() => 0)
    this.description = {
      inputs,
      outputs,
      executionProvider: attempt.executionProvider,
      device: attempt.device,
      instances: this.sessions.length,
      ...(this.offThread ? { workerThreads: true } : {}),
      ...(fallbackReason ? { fallbackReason } : {}),
    }
  }

  describe(): BackendDescription {
    if (!this.description) throw new Error('backend not loaded')
    return this.description
  }

  /** Least busy session; ties rotate so idle sessions share the work. */
  private pickSession(): number {
    let best = -1
    for (let k = 0; k < this.sessions.length; k++) {
      const i = (this.nextSession + k) % this.sessions.length
      if (best === -1 || this.busy[i] < this.busy[best]) best = i
    }
    this.nextSession = (best + 1) % this.sessions.length
    return best
  }

  async run(inputs: Tensor[], outputNames?: string[]): Promise<Tensor[]> {
    if (this.sessions.length === 0) throw new Error('backend is not loaded or was disposed')
    const index = this.pickSession()
    this.busy[index]++
    try {
      return await this.sessions[index].run(inputs, outputNames)
    } finally {
      this.busy[index]--
    }
  }

  async dispose(): Promise<void> {
    const sessions = this.sessions
    this.sessions = []
    this.releaseReservation?.()
    this.releaseReservation = undefined
    await Promise.all(sessions.map((s) => s.release().catch(() => undefined)))
  }
}
