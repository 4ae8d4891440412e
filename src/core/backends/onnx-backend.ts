import type * as ort from 'onnxruntime-node'
import { firstLine } from '../../shared/errors.js'
import { discoverGpus, type GpuDiscovery } from '../gpu/nvidia-smi.js'
import type { GpuReservations } from '../gpu/placement.js'
import { modelInstanceCrashed, modelNotReady } from '../infer/errors.js'
import type { Tensor, TensorSpec } from '../infer/types.js'
import { type CoreLogger, silentLogger } from '../logger.js'
import type { Backend, BackendDescription, DevicePolicy } from './backend.js'
import { type ProviderAttempt, planProviders, providerFailure } from './execution-provider.js'
import { type OnnxSession, openInlineSession } from './onnx-session.js'
import { specFromMetadata } from './onnx-tensors.js'
import { sharedWorkerPool, type WorkerPool } from './worker-pool.js'
import { type HostedSession, type Isolation, WorkerExitedError } from './worker-session.js'

export interface OnnxBackendOptions {
  modelPath: string
  device: DevicePolicy
  /** Pin to this GPU index (config `gpu`). */
  gpu?: number
  /** Device memory the model may use, in MiB; used for placement (onnxruntime-node has no per-session cap). */
  memoryBudgetMiB?: number
  /**
   * Sessions to open; the scheduler runs up to this many batches at once. Absent, worker-thread CPU
   * models open one and a second once the first is busy enough to need it (see GROW_AFTER_BUSY_RUNS).
   */
  instances?: number
  intraOpThreads?: number
  interOpThreads?: number
  /**
   * Run the sessions in the worker pool's threads, keeping the event loop free while they compute.
   * Default: on for the CPU provider (HTTP work then overlaps compute), off for GPUs.
   */
  workerThreads?: boolean
  /**
   * Where the sessions run (config `isolation`): `thread`, the worker pool's threads (or inline, see
   * workerThreads); `process`, a worker process per instance, so that a native crash inside
   * onnxruntime (SIGSEGV, SIGBUS, abort) costs that instance, which reopens, and not the daemon.
   */
  isolation?: Isolation
  /** The worker threads that host the sessions (sharedWorkerPool() when absent). */
  pool?: WorkerPool
  /**
   * Let onnxruntime's thread pools busy-wait between runs. Off by default: the spinning threads
   * take the cores the HTTP thread and the clients need, which costs a server far more than the
   * microseconds a sleeping pool needs to wake.
   */
  allowSpinning?: boolean
  /**
   * How long one run may take in a worker thread (config run_timeout_s) before the thread counts as
   * hung: it is given up (its calls fail with MODEL_INSTANCE_CRASHED) and the instance reopens on a
   * live thread. Absent: no limit.
   */
  runTimeoutMs?: number
  /**
   * Called once when the backend gives up: its instances' threads stopped MAX_INSTANCE_CRASHES
   * times within CRASH_WINDOW_MS, or an instance could not be reopened. The lifecycle then marks
   * the version UNAVAILABLE with `reason`.
   */
  onUnavailable?: (reason: string) => void
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
 * Instances a worker-thread CPU model may grow to when its config names none: two, so one computes
 * while the next batch is handed to the other (a GPU session gets one). On 2 cores PP-OCR cls served
 * 1771 items/s with one instance and 2879 with two, in the same minute (bench/README.md). The second
 * opens only once the model is busy (GROW_AFTER_BUSY_RUNS): in a repository of hundreds of small
 * models most never need it, and each instance costs the model's memory again.
 */
export const DEFAULT_CPU_INSTANCES = 2

/**
 * Runs that found every instance busy before a model whose config names no `instances` opens its
 * next one: a load test reaches it in milliseconds, a model queried now and then never does (the
 * warmup's one pass per instance counts one).
 */
export const GROW_AFTER_BUSY_RUNS = 8

/** Whether a session's worker thread exited or was given up (inline sessions have none to lose). */
function lostThread(session: OnnxSession): boolean {
  const host = (session as Partial<HostedSession>).host
  return host !== undefined && !host.alive
}

/** Instances when the config names none: DEFAULT_CPU_INSTANCES for worker-thread CPU sessions, else 1. */
export function defaultInstances(offThread: boolean, executionProvider: string): number {
  return offThread && executionProvider === 'cpu' ? DEFAULT_CPU_INSTANCES : 1
}

/**
 * What every session of a backend is created with: the attempt's providers, thread counts from the
 * config or, for sessions in the worker pool on the CPU, `pooledIntraOp` intra-op threads and one
 * inter-op thread (so the pool's threads are all the compute threads there are: no per-session
 * thread pools), and spinning off unless the config allows it. One session spanning every core makes
 * its threads fight the HTTP thread: served on 2 cores, PP-OCR cls took 1.15–1.6 CPU ms per item with
 * one session of two intra-op threads and 0.68–0.95 with one thread (bench/README.md).
 */
export function sessionOptionsFor(
  options: Pick<OnnxBackendOptions, 'intraOpThreads' | 'interOpThreads' | 'allowSpinning'>,
  attempt: Pick<ProviderAttempt, 'providers' | 'executionProvider'>,
  offThread: boolean,
  pooledIntraOp: number,
): ort.InferenceSession.SessionOptions {
  const pooledCpu = offThread && attempt.executionProvider === 'cpu'
  const intraOp = options.intraOpThreads || (pooledCpu ? pooledIntraOp : undefined)
  const interOp = options.interOpThreads || (pooledCpu ? 1 : undefined)
  return {
    executionProviders: attempt.providers,
    graphOptimizationLevel: 'all',
    // Errors only: warnings (e.g. unused initializers) would flood the daemon log on every load.
    logSeverityLevel: 3,
    ...(intraOp ? { intraOpNumThreads: intraOp } : {}),
    ...(interOp ? { interOpNumThreads: interOp } : {}),
    ...(options.allowSpinning ? {} : { extra: NO_SPINNING }),
  }
}

/**
 * Worker-thread exits (a crash, a run past run_timeout_s) a model version survives within
 * CRASH_WINDOW_MS: each time the lost instance reopens on a live thread; the next one makes the
 * version UNAVAILABLE until it is loaded again, so a model that kills every thread it lands on
 * cannot take the pool's threads down one after another.
 */
export const MAX_INSTANCE_CRASHES = 3
export const CRASH_WINDOW_MS = 60_000
/** Tries at reopening a lost instance, waiting REOPEN_BACKOFF_MS, then twice that, … between them. */
export const REOPEN_ATTEMPTS = 4
export const REOPEN_BACKOFF_MS = 100

/** The error a backend throws when it cannot load; `reason` is the one line for UNAVAILABLE. */
export class BackendLoadError extends Error {
  constructor(readonly reason: string) {
    super(reason)
    this.name = 'BackendLoadError'
  }
}

/**
 * onnxruntime-node behind the Backend interface: N sessions of one model file on the provider the
 * device policy allows (in the worker pool's threads, or inline), each call to `run` going to the
 * least busy session.
 */
export class OnnxBackend implements Backend {
  private sessions: OnnxSession[] = []
  private busy: number[] = []
  private nextSession = 0
  /** Instances the model may have: what the scheduler dispatches to (sessions open up to it). */
  private maxInstances = 1
  /** Runs that found every session busy, towards opening the next instance. */
  private busyRuns = 0
  private growing = false
  private sessionOptions?: ort.InferenceSession.SessionOptions
  private description?: BackendDescription
  /** Whether the sessions run in worker threads (decided per provider attempt). */
  private offThread = false
  private releaseReservation?: () => void
  private readonly logger: CoreLogger
  /** Reopens under way, by the session whose thread was lost: concurrent runs share one. */
  private readonly reopening = new Map<OnnxSession, Promise<OnnxSession>>()
  /** When threads holding an instance were lost (each thread counted once), within CRASH_WINDOW_MS. */
  private crashes: number[] = []
  private readonly lostHosts = new WeakSet<object>()
  /** Threads this backend's own watchdog gave up (see runOn). */
  private readonly hungHosts = new WeakSet<object>()
  /** Set once the backend gave up (see onUnavailable): every run fails with it. */
  private failure?: string
  private disposed = false

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

  private get pool(): WorkerPool {
    return this.options.pool ?? sharedWorkerPool()
  }

  private openOne(sessions: readonly OnnxSession[]): Promise<OnnxSession> {
    const sessionOptions = this.sessionOptions ?? {}
    if (!this.offThread) return openInlineSession(this.options.modelPath, sessionOptions)
    if (this.options.isolation === 'process')
      return this.pool.openIsolated(this.options.modelPath, sessionOptions)
    return this.pool.open(this.options.modelPath, sessionOptions, sessions as HostedSession[])
  }

  private async openSessions(attempt: ProviderAttempt): Promise<OnnxSession[]> {
    const { options } = this
    this.offThread =
      options.isolation === 'process' || (options.workerThreads ?? attempt.executionProvider === 'cpu')
    const defaulted = defaultInstances(this.offThread, attempt.executionProvider)
    // Instances beyond the pool's threads would only queue behind each other on one thread.
    this.maxInstances = Math.max(
      1,
      this.offThread
        ? Math.min(options.instances ?? defaulted, this.pool.size)
        : (options.instances ?? defaulted),
    )
    this.sessionOptions = sessionOptionsFor(
      options,
      attempt,
      this.offThread,
      this.offThread ? this.pool.intraOpThreads() : 1,
    )
    // Named instances open now; defaulted ones open as load needs them (see grow).
    const opening = options.instances === undefined ? 1 : this.maxInstances
    const sessions: OnnxSession[] = []
    try {
      for (let i = 0; i < opening; i++) sessions.push(await this.openOne(sessions))
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
      instances: this.maxInstances,
      ...(this.offThread ? { computesOffEventLoop: true } : {}),
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

  /** Sessions open now (up to describe().instances). */
  get openSessionCount(): number {
    return this.sessions.length
  }

  /**
   * Opens the next instance once runs keep finding every session busy. A failure (no memory, no
   * thread) is logged and the model keeps serving on the instances it has.
   */
  private grow(): void {
    if (this.growing || this.sessions.length >= this.maxInstances) return
    if (++this.busyRuns < GROW_AFTER_BUSY_RUNS) return
    this.growing = true
    this.busyRuns = 0
    const current = this.sessions
    this.openOne(current)
      .then(async (session) => {
        // Disposed (or reloaded) meanwhile: the session has nobody to serve.
        if (this.sessions !== current) return session.release()
        this.sessions = [...current, session]
        this.busy.push(0)
        this.logger.debug(
          { model: this.options.label, instances: this.sessions.length },
          'opened another instance under load',
        )
      })
      .catch((err: Error) => {
        this.maxInstances = this.sessions.length || 1
        this.logger.warn(
          { model: this.options.label, err: err.message },
          'cannot open another instance; serving on the ones open',
        )
      })
      .finally(() => {
        this.growing = false
      })
  }

  async run(inputs: Tensor[], outputNames?: string[]): Promise<Tensor[]> {
    if (this.failure) throw modelNotReady(this.modelName, this.failure)
    if (this.sessions.length === 0) throw new Error('backend is not loaded or was disposed')
    const index = this.pickSession()
    if (this.busy[index] > 0) this.grow()
    const sessions = this.sessions
    const busy = this.busy
    busy[index]++
    let session = sessions[index]
    try {
      // Its thread died since the last run: requests from now on wait for the instance to reopen.
      if (lostThread(session)) session = await this.reopen(session)
      return await this.runOn(session, inputs, outputNames)
    } catch (err) {
      if (!(err instanceof WorkerExitedError)) throw err
      void this.reopen(session).catch(() => undefined)
      throw modelInstanceCrashed(this.modelName, err.message)
    } finally {
      busy[index]--
    }
  }

  /** The model as errors name it: "name' version 'v" from the label "name:v". */
  private get modelName(): string {
    const label = this.options.label ?? 'model'
    const at = label.lastIndexOf(':')
    return at > 0 ? `${label.slice(0, at)}' version '${label.slice(at + 1)}` : label
  }

  /** One run, under the watchdog when the model has a run_timeout_s and the session a thread. */
  private async runOn(session: OnnxSession, inputs: Tensor[], outputNames?: string[]): Promise<Tensor[]> {
    const timeoutMs = this.options.runTimeoutMs
    const host = (session as Partial<HostedSession>).host
    if (!timeoutMs || !host) return session.run(inputs, outputNames)
    // onnxruntime cannot be interrupted: the thread is given up (its calls fail now) and ends once
    // the run returns, while the instance reopens on a live thread.
    const timer = setTimeout(() => {
      this.hungHosts.add(host)
      host.abandon(
        `a run took longer than run_timeout_s (${timeoutMs / 1000} s), so its onnxruntime ${host.kind} was ${host.isolation === 'process' ? 'killed' : 'stopped'}`,
      )
    }, timeoutMs)
    try {
      return await session.run(inputs, outputNames)
    } finally {
      clearTimeout(timer)
    }
  }

  /** Reopens an instance whose thread was lost on a live one; concurrent callers share the attempt. */
  private reopen(lost: OnnxSession): Promise<OnnxSession> {
    let pending = this.reopening.get(lost)
    if (!pending) {
      pending = this.reopenWithRetries(lost).finally(() => this.reopening.delete(lost))
      this.reopening.set(lost, pending)
    }
    return pending
  }

  private async reopenWithRetries(lost: OnnxSession): Promise<OnnxSession> {
    const host = (lost as HostedSession).host
    const why = host.exitReason ?? `its onnxruntime ${host.kind} exited`
    // A thread another model's watchdog gave up is that model's fault: the instance reopens, uncounted.
    const blamed = !host.abandoned || this.hungHosts.has(host)
    if (blamed && !this.lostHosts.has(host)) {
      this.lostHosts.add(host)
      const now = Date.now()
      this.crashes = [...this.crashes.filter((at) => now - at < CRASH_WINDOW_MS), now]
    }
    await lost.release()
    if (this.crashes.length >= MAX_INSTANCE_CRASHES) {
      throw this.giveUp(
        `its onnxruntime ${host.isolation === 'process' ? 'worker processes' : 'worker threads'} stopped ${this.crashes.length} times within ${CRASH_WINDOW_MS / 1000} s (last: ${why}); load it again once the cause is fixed`,
      )
    }
    this.logger.warn(
      { model: this.options.label, reason: why },
      `reopening an instance on a live ${host.kind}`,
    )
    let lastError = ''
    for (let attempt = 0; attempt < REOPEN_ATTEMPTS; attempt++) {
      if (attempt > 0)
        await new Promise((resolve) => setTimeout(resolve, REOPEN_BACKOFF_MS * 2 ** (attempt - 1)))
      if (this.disposed || this.failure)
        throw modelNotReady(this.modelName, this.failure ?? 'it was unloaded')
      let session: OnnxSession
      try {
        session = await this.openOne(this.sessions.filter((s) => s !== lost && !lostThread(s)))
      } catch (err) {
        lastError = firstLine((err as Error).message)
        continue
      }
      const at = this.sessions.indexOf(lost)
      if (this.disposed || at < 0) {
        await session.release()
        throw modelNotReady(this.modelName, 'it was unloaded')
      }
      this.sessions[at] = session
      this.logger.info({ model: this.options.label }, `instance reopened on a live ${host.kind}`)
      return session
    }
    throw this.giveUp(
      `an instance lost with its onnxruntime ${host.kind} (${why}) could not be reopened after ${REOPEN_ATTEMPTS} tries: ${lastError}`,
    )
  }

  /** Stops serving for good: every run fails with `reason`, and the lifecycle is told once. */
  private giveUp(reason: string): Error {
    if (!this.failure) {
      this.failure = reason
      this.logger.error(
        { model: this.options.label, reason },
        `${this.options.label ?? 'model'} is unavailable`,
      )
      this.options.onUnavailable?.(reason)
    }
    return modelNotReady(this.modelName, this.failure)
  }

  async dispose(): Promise<void> {
    this.disposed = true
    const sessions = this.sessions
    this.sessions = []
    this.releaseReservation?.()
    this.releaseReservation = undefined
    await Promise.all(sessions.map((s) => s.release().catch(() => undefined)))
  }
}
