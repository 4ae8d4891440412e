import { type ChildProcess, spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import type * as ort from 'onnxruntime-node'
import { isMovable, movableCopy, recycleMovable } from '../infer/tensor-data.js'
import type { Datatype, Tensor, TensorData } from '../infer/types.js'
import type { OnnxSession } from './onnx-session.js'
import { fromOrtParts, ORT_TYPE } from './onnx-tensors.js'

/**
 * The worker's whole program: it hosts any number of sessions by id and runs one call at a time
 * (onnxruntime-node computes on the calling thread). It is plain CommonJS evaluated from a string so
 * the same code runs from dist/ and from the TypeScript sources under test, with no build step for a
 * worker file.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
// A worker thread talks through parentPort; a worker process (isolation: process) through its IPC channel.
const port = parentPort || process
const ort = require(parentPort ? workerData.ortPath : process.env.HELIX_ORT_PATH)
const sessions = new Map()
// Set by the host to stop the thread: checked between calls, never during one (see SessionHost.stop).
const stopped = parentPort ? new Int32Array(workerData.stop) : new Int32Array(1)
const reply = parentPort
  ? (message, transfer) => {
      try { parentPort.postMessage(message, transfer) } catch { parentPort.postMessage(message) }
    }
  : (message) => process.send(message)
// A worker process whose daemon is gone (killed, crashed) leaves with it.
if (!parentPort) process.on('disconnect', () => process.exit(0))
const sessionOf = (id) => {
  const session = sessions.get(id)
  if (!session) throw new Error('the session was released')
  return session
}
port.on('message', async (msg) => {
  if (Atomics.load(stopped, 0) === 1 || msg.type === 'exit') process.exit(0)
  try {
    if (msg.type === 'load') {
      const session = await ort.InferenceSession.create(msg.modelPath, msg.options)
      sessions.set(msg.session, session)
      reply({ id: msg.id, ok: true, inputMetadata: session.inputMetadata, outputMetadata: session.outputMetadata })
    } else if (msg.type === 'run') {
      const session = sessionOf(msg.session)
      const feeds = {}
      for (const f of msg.feeds) feeds[f.name] = new ort.Tensor(f.type, f.data, f.dims)
      const results = msg.outputNames ? await session.run(feeds, msg.outputNames) : await session.run(feeds)
      const names = msg.outputNames || session.outputNames
      const outputs = names.map((name) => ({ name, type: results[name].type, dims: results[name].dims, data: results[name].data }))
      // A thread hands the inputs' memory back for reuse, and outputs move too (transfer, no copy);
      // between processes everything is copied, so nothing comes back.
      const returned = parentPort ? msg.feeds.filter((f) => ArrayBuffer.isView(f.data)).map((f) => f.data.buffer) : []
      const buffers = [...new Set([...returned, ...outputs.filter((o) => ArrayBuffer.isView(o.data)).map((o) => o.data.buffer)])]
      reply({ id: msg.id, ok: true, outputs, returned }, buffers)
    } else if (msg.type === 'release') {
      const session = sessions.get(msg.session)
      sessions.delete(msg.session)
      if (session) await session.release()
      reply({ id: msg.id, ok: true })
    }
  } catch (err) {
    reply({ id: msg.id, ok: false, message: String((err && err.message) || err) })
  }
})
`

interface WorkerReply {
  id: number
  ok: boolean
  message?: string
  inputMetadata?: ort.InferenceSession.ValueMetadata[]
  outputMetadata?: ort.InferenceSession.ValueMetadata[]
  outputs?: { name: string; type: string; dims: number[]; data: unknown }[]
  /** The moved input buffers, handed back after the run. */
  returned?: ArrayBuffer[]
}

const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node')
const utf8 = new TextDecoder()

/**
 * Inputs as the worker needs them. A batch the batcher assembled owns its buffer, which moves to the
 * worker thread with no copy; anything else (a view of a request body, which a shadow version or the
 * cache may still read) is copied once into a buffer of its own, which then moves. The worker hands
 * every moved buffer back with the results, for the next batch (recycleMovable). A worker process is
 * sent copies of the views' bytes by the IPC channel's serializer whatever they are, so for it
 * (`copied`) nothing is copied beforehand and nothing moves.
 */
function feedsFor(inputs: Tensor[], copied: boolean): { feeds: unknown[]; transfer: ArrayBuffer[] } {
  const transfer: ArrayBuffer[] = []
  const feeds = inputs.map((tensor) => {
    const type = ORT_TYPE[tensor.datatype]
    if (!type) throw new Error(`datatype ${tensor.datatype} cannot be fed to onnxruntime`)
    if (Array.isArray(tensor.data)) {
      return { name: tensor.name, type, dims: tensor.shape, data: tensor.data.map((b) => utf8.decode(b)) }
    }
    const numeric = tensor.data as Exclude<TensorData, Uint8Array[]>
    if (copied) return { name: tensor.name, type, dims: tensor.shape, data: numeric }
    const data = isMovable(numeric)
      ? numeric
      : movableCopy(numeric, tensor.datatype as Exclude<Datatype, 'BYTES'>)
    transfer.push(data.buffer as ArrayBuffer)
    return { name: tensor.name, type, dims: tensor.shape, data }
  })
  return { feeds, transfer }
}

/**
 * Why a call failed when its worker exited or was stopped (an error in the thread, a crash of the
 * process, a run that outlived the model's run_timeout_s): the worker, not the input, is to blame, so
 * the model's instance is reopened on a live one (see OnnxBackend).
 */
export class WorkerExitedError extends Error {
  override name = 'WorkerExitedError'
}

/** A session hosted by a SessionHost; `host` tells a pool where the model's other instances are. */
export interface HostedSession extends OnnxSession {
  readonly host: SessionHost
}

/**
 * Where a host runs its sessions: a worker thread of the daemon (the default: tensors move without
 * copies), or a child process of its own (config `isolation: process`): tensors are copied through a
 * pipe, but a native crash inside onnxruntime (SIGSEGV, SIGBUS, abort) ends only that process, where
 * in a thread it ends the daemon.
 */
export type Isolation = 'thread' | 'process'

/** What a host needs of its worker, a thread or a process. */
interface WorkerChannel {
  post(message: Record<string, unknown>, transfer: ArrayBuffer[]): void
  /** Whether the worker keeps the daemon's event loop alive (while calls are in flight). */
  ref(): void
  unref(): void
  /** Asks the worker to exit before its next call. */
  stop(): void
  /** Ends the worker now where that is safe (a process: SIGKILL); a thread can only be asked (stop). */
  kill(): void
}

interface ChannelEvents {
  message(reply: WorkerReply): void
  /** The worker failed (it may still be ending); `reason` is the sentence errors quote. */
  failed(reason: string): void
  /** The worker has ended. */
  ended(reason: string): void
}

/**
 * A worker thread. Never worker.terminate() here: terminating a thread while onnxruntime-node runs a
 * session on it aborts the whole process (the binding throws a C++ Napi::Error nothing catches), so
 * the thread leaves by itself between calls (a flag it checks, and an exit message).
 */
function threadChannel(events: ChannelEvents): WorkerChannel {
  const stopFlag = new Int32Array(new SharedArrayBuffer(4))
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ortPath, stop: stopFlag.buffer } })
  worker.on('message', events.message)
  worker.on('error', (err) => events.failed(`its onnxruntime worker thread failed: ${err.message}`))
  worker.on('exit', (code) => events.ended(`its onnxruntime worker thread exited (code ${code})`))
  const stop = () => {
    Atomics.store(stopFlag, 0, 1)
    try {
      worker.postMessage({ type: 'exit' })
    } catch {
      // The thread is gone already.
    }
  }
  return {
    post: (message, transfer) => worker.postMessage(message, transfer),
    ref: () => worker.ref(),
    unref: () => worker.unref(),
    stop,
    kill: stop,
  }
}

/** The last lines a worker process wrote on stderr, kept for the reason of its exit. */
const STDERR_KEPT = 2048

/**
 * A worker process: the same program run by this Node.js (`node -e`), over an IPC channel with V8's
 * serialization (typed arrays travel as their bytes). It leaves when the daemon's end of the channel
 * closes, so a daemon killed with SIGKILL leaves no worker behind. What it writes on stderr (what
 * onnxruntime prints before an abort) is kept for the exit reason; its stdout is the daemon's log's
 * business and is not shared.
 */
function processChannel(events: ChannelEvents): WorkerChannel & { pid: number | undefined } {
  const child: ChildProcess = spawn(process.execPath, ['-e', WORKER_SOURCE], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    serialization: 'advanced',
    env: { ...process.env, HELIX_ORT_PATH: ortPath },
  })
  let stderr = ''
  // Read while the worker lives, but never what keeps the daemon running (see unref).
  ;(child.stderr as (NodeJS.ReadableStream & { unref?: () => void }) | null)?.unref?.()
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEPT)
  })
  child.on('message', (reply) => events.message(reply as WorkerReply))
  child.on('error', (err) => {
    const reason = `its onnxruntime worker process failed: ${err.message}`
    // A process that never started (EAGAIN, ENOMEM) has no exit to wait for.
    if (child.pid === undefined) events.ended(reason)
    else events.failed(reason)
  })
  // 'close' comes after its stderr has been read to the end.
  child.on('close', (code, signal) => {
    const said = stderr.trim().split('\n').filter(Boolean).at(-1)
    const how = signal ? `was killed by ${signal}` : `exited (code ${code})`
    events.ended(`its onnxruntime worker process ${how}${said ? ` (${said})` : ''}`)
  })
  const channel = () => child.channel as { ref(): void; unref(): void } | null | undefined
  return {
    pid: child.pid,
    post: (message) => {
      child.send(message)
    },
    ref: () => {
      child.ref()
      channel()?.ref()
    },
    unref: () => {
      child.unref()
      channel()?.unref()
    },
    stop: () => {
      if (child.connected) child.send({ type: 'exit' })
    },
    kill: () => {
      child.kill('SIGKILL')
    },
  }
}

/**
 * One worker hosting sessions: a thread of the pool hosting many (a pool places them, see
 * worker-pool.ts), or a process of its own hosting one (`isolation: process`). The event loop stays
 * free while they compute (requests keep being parsed, deadlines fire on time), and sessions on
 * different hosts really run at once. Batches move to a thread and results move back without copies;
 * a lone request's input is copied once (see feedsFor).
 */
export class SessionHost {
  private readonly channel: WorkerChannel
  private readonly pending = new Map<
    number,
    { resolve: (reply: WorkerReply) => void; reject: (error: Error) => void }
  >()
  private nextId = 0
  private nextSession = 0
  private exited?: WorkerExitedError
  /** Resolves once the worker has really ended (a stopped thread may still finish a run first). */
  readonly ended: Promise<void>
  /** The worker process's id (isolation: process). */
  readonly pid: number | undefined
  /** Sessions opened here and not released: what placement balances. */
  sessions = 0
  /** Set when a watchdog gave the worker up (abandon): the model whose run hung is to blame, not its neighbours. */
  abandoned = false

  /** Starts the worker; throws when it cannot be created (ERR_WORKER_INIT_FAILED, no memory). */
  constructor(
    private readonly onExit: (host: SessionHost) => void = () => {},
    readonly isolation: Isolation = 'thread',
  ) {
    let ended!: () => void
    this.ended = new Promise((resolve) => {
      ended = resolve
    })
    const events: ChannelEvents = {
      message: (reply) => {
        const waiter = this.pending.get(reply.id)
        this.pending.delete(reply.id)
        if (this.pending.size === 0) this.channel.unref()
        if (!waiter) return
        if (reply.ok) waiter.resolve(reply)
        else waiter.reject(new Error(reply.message))
      },
      failed: (reason) => this.fail(new WorkerExitedError(reason)),
      ended: (reason) => {
        this.fail(new WorkerExitedError(reason))
        ended()
      },
    }
    if (isolation === 'process') {
      const channel = processChannel(events)
      this.pid = channel.pid
      this.channel = channel
    } else {
      this.channel = threadChannel(events)
    }
    // After the listeners (adding one refs the worker again): an idle worker must not keep the
    // process alive; a call in flight does (see call).
    this.channel.unref()
  }

  /** "worker thread" or "worker process", for the sentences errors and logs say. */
  get kind(): string {
    return `worker ${this.isolation}`
  }

  /** False once the worker failed, exited or was stopped: nothing more can be opened or run here. */
  get alive(): boolean {
    return this.exited === undefined
  }

  /** Why the worker is no longer alive. */
  get exitReason(): string | undefined {
    return this.exited?.message
  }

  private fail(error: WorkerExitedError): void {
    if (this.exited) return
    this.exited = error
    for (const waiter of this.pending.values()) waiter.reject(error)
    this.pending.clear()
    this.channel.unref()
    this.onExit(this)
  }

  private call(message: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
    return new Promise<WorkerReply>((resolve, reject) => {
      if (this.exited) return reject(this.exited)
      const id = this.nextId++
      if (this.pending.size === 0) this.channel.ref()
      this.pending.set(id, { resolve, reject })
      this.channel.post({ ...message, id }, transfer)
    })
  }

  /** Opens a session of the model on this worker; rejects with onnxruntime's reason. */
  async open(modelPath: string, options: ort.InferenceSession.SessionOptions): Promise<HostedSession> {
    const session = this.nextSession++
    this.sessions++
    let loaded: WorkerReply
    try {
      loaded = await this.call({ type: 'load', session, modelPath, options })
    } catch (err) {
      this.sessions--
      throw err
    }
    let released = false
    const copied = this.isolation === 'process'
    return {
      host: this,
      inputMetadata: loaded.inputMetadata ?? [],
      outputMetadata: loaded.outputMetadata ?? [],
      run: async (inputs, outputNames) => {
        const { feeds, transfer } = feedsFor(inputs, copied)
        const reply = await this.call({ type: 'run', session, feeds, outputNames }, transfer)
        for (const buffer of reply.returned ?? []) recycleMovable(buffer)
        return (reply.outputs ?? []).map((o) => fromOrtParts(o.name, o.type, o.dims, o.data))
      },
      release: async () => {
        if (released) return
        released = true
        this.sessions--
        if (this.alive) await this.call({ type: 'release', session }).catch(() => undefined)
      },
    }
  }

  /**
   * Gives the worker up at once: its calls in flight and its sessions fail with `reason` from now
   * on. A process is killed there and then; a thread exits as soon as onnxruntime hands control back
   * (the run that hung it finishes first; see threadChannel). Used by the run watchdog (a model's
   * run_timeout_s).
   */
  abandon(reason: string): void {
    this.abandoned = true
    this.channel.kill()
    this.fail(new WorkerExitedError(reason))
  }

  /** Stops the worker once its current call is done; its sessions fail from then on. */
  async terminate(): Promise<void> {
    // Referenced while it ends: an idle worker is unreferenced, and a process awaiting only an
    // unreferenced worker would exit before it does.
    this.channel.ref()
    this.channel.stop()
    await this.ended
  }
}
