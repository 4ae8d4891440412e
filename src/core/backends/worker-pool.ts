import { availableParallelism } from 'node:os'
import type * as ort from 'onnxruntime-node'
import { firstLine } from '../../shared/errors.js'
import { type CoreLogger, silentLogger } from '../logger.js'
import { type HostedSession, type Isolation, SessionHost } from './worker-session.js'

/**
 * Worker threads a pool starts when its size is not configured: one per core. Each computes one
 * batch at a time with one intra-op thread, so the pool's compute threads match the cores, as the
 * two single-threaded instances per model did on 2 cores (PP-OCR cls served 2244 items/s that way
 * and 1489 with one instance of two intra-op threads, bench/README.md).
 */
export function defaultPoolSize(cores = availableParallelism()): number {
  return Math.max(1, cores)
}

/**
 * intra-op threads per pooled session when the config names none: the cores shared by the pool's
 * threads, so that every thread computing at once never oversubscribes the cores (1 with the
 * default size; a smaller pool gives each session more).
 */
export function pooledIntraOpThreads(poolSize: number, cores = availableParallelism()): number {
  return Math.max(1, Math.floor(cores / Math.max(1, poolSize)))
}

export interface WorkerPoolOptions {
  /** Worker threads at most (helix.yaml models.worker_threads; 0 or absent: defaultPoolSize()). */
  size?: number
  logger?: CoreLogger
  /** Starts one worker; a seam for tests of what happens when the system refuses one. */
  startHost?: (onExit: (host: SessionHost) => void, isolation: Isolation) => SessionHost
}

/** A pool that cannot start even one worker thread: the model cannot be opened off the event loop. */
export class WorkerStartError extends Error {
  override name = 'WorkerStartError'
}

/**
 * The process's worker threads for CPU sessions: a fixed number of threads, started as sessions
 * need them, each hosting many sessions (of any model), so a repository of hundreds of models runs
 * on as many threads as the machine has cores instead of one thread (and thread pools) per
 * instance. A model's instances go to different threads, each to the one hosting fewest sessions.
 * When the system refuses a new thread, the pool keeps the threads it has and places sessions on
 * them; a thread that dies takes its sessions with it and is replaced on the next open (the
 * backend reopens the sessions it lost, see OnnxBackend).
 */
export class WorkerPool {
  readonly size: number
  private readonly hosts: SessionHost[] = []
  /** Worker processes, one per isolated session (see openIsolated). */
  private readonly processes = new Set<SessionHost>()
  /** Threads that left the pool and have not ended yet. */
  private readonly ending = new Set<SessionHost>()
  private readonly logger: CoreLogger
  /** Lowered to the threads that started when the system refused another one. */
  private limit: number
  private closed = false

  constructor(private readonly options: WorkerPoolOptions = {}) {
    this.size = options.size && options.size > 0 ? options.size : defaultPoolSize()
    this.limit = this.size
    this.logger = options.logger ?? silentLogger
  }

  /** Threads running now. */
  get threads(): number {
    return this.hosts.length
  }

  /** intra-op threads a session gets by default in this pool (see pooledIntraOpThreads). */
  intraOpThreads(): number {
    return pooledIntraOpThreads(this.size)
  }

  /**
   * Opens a session on the least loaded thread that holds none of `siblings` (the model's other
   * instances), starting a thread while the pool is below its size.
   */
  async open(
    modelPath: string,
    options: ort.InferenceSession.SessionOptions,
    siblings: readonly HostedSession[] = [],
  ): Promise<HostedSession> {
    if (this.closed) throw new WorkerStartError('the worker pool is closed')
    return this.place(siblings).open(modelPath, options)
  }

  /**
   * Opens a session in a worker process of its own (config `isolation: process`): a native crash
   * inside onnxruntime ends that process, not the daemon. The process ends with the session's
   * release; processes do not count towards the pool's threads.
   */
  async openIsolated(
    modelPath: string,
    options: ort.InferenceSession.SessionOptions,
  ): Promise<HostedSession> {
    if (this.closed) throw new WorkerStartError('the worker pool is closed')
    const host = this.startHost('process')
    this.processes.add(host)
    let session: HostedSession
    try {
      session = await host.open(modelPath, options)
    } catch (err) {
      this.processes.delete(host)
      await host.terminate()
      throw err
    }
    return {
      ...session,
      release: async () => {
        await session.release()
        this.processes.delete(host)
        await host.terminate()
      },
    }
  }

  private place(siblings: readonly HostedSession[]): SessionHost {
    const taken = new Set(siblings.map((s) => s.host))
    let best: SessionHost | undefined
    for (const host of this.hosts) {
      if (!host.alive || taken.has(host)) continue
      if (!best || host.sessions < best.sessions) best = host
    }
    if (this.hosts.length < this.limit && (!best || best.sessions > 0)) {
      const started = this.start()
      if (started) return started
    }
    if (best) return best
    // Every thread already holds an instance of this model: share the least loaded one.
    const any = this.hosts.filter((h) => h.alive).sort((a, b) => a.sessions - b.sessions)[0]
    if (any) return any
    throw new WorkerStartError(
      `cannot start a worker thread for onnxruntime: ${this.lastStartError ?? 'the pool has none'}`,
    )
  }

  private lastStartError?: string

  private start(): SessionHost | undefined {
    try {
      const host = this.startHost('thread')
      this.hosts.push(host)
      return host
    } catch (err) {
      this.lastStartError = firstLine((err as Error).message)
      // Keep what runs: the system (ulimit -u, memory) allows no more threads than these.
      this.limit = Math.max(1, this.hosts.length)
      this.logger.warn(
        { threads: this.hosts.length, size: this.size, err: this.lastStartError },
        `cannot start another onnxruntime worker thread; sharing the ${this.hosts.length} running`,
      )
      return undefined
    }
  }

  /** A new worker that tells the pool when it ends (the test seam `startHost` when given). */
  private startHost(isolation: Isolation): SessionHost {
    const start = this.options.startHost ?? ((onExit, kind) => new SessionHost(onExit, kind))
    return start((exited) => this.forget(exited), isolation)
  }

  private forget(host: SessionHost): void {
    const at = this.hosts.indexOf(host)
    // Neither running nor isolated any more: it was ended on purpose (a released session, close()).
    if (at < 0 && !this.processes.delete(host)) return
    if (at >= 0) this.hosts.splice(at, 1)
    // A thread given up during a run ends once onnxruntime returns: close() waits for it, since a
    // process that exits with a thread inside onnxruntime aborts.
    this.ending.add(host)
    // And the process stays up until it has: with only this thread left running, a shutdown awaiting
    // it would otherwise find an empty event loop and exit 13 mid-run.
    const keepAlive = setInterval(() => {}, 60_000)
    void host.ended.then(() => {
      clearInterval(keepAlive)
      this.ending.delete(host)
    })
    if (!this.closed)
      this.logger.warn(
        { threads: this.hosts.length, reason: host.exitReason },
        `an onnxruntime ${host.kind} exited`,
      )
  }

  /** Stops every thread once its current call is done (their sessions fail from then on). */
  async close(): Promise<void> {
    this.closed = true
    const hosts = [...this.hosts.splice(0), ...this.processes, ...this.ending]
    this.processes.clear()
    await Promise.all(hosts.map((h) => h.terminate()))
  }
}

let shared: WorkerPool | undefined

/** The process-wide pool (default size) for backends that are given none. */
export function sharedWorkerPool(): WorkerPool {
  shared ??= new WorkerPool()
  return shared
}
