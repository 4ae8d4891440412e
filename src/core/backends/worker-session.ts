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
const ort = require(workerData.ortPath)
const sessions = new Map()
// Set by the host to stop the thread: checked between calls, never during one (see SessionHost.stop).
const stopped = new Int32Array(workerData.stop)
const reply = (message, transfer) => {
  try { parentPort.postMessage(message, transfer) } catch { parentPort.postMessage(message) }
}
const sessionOf = (id) => {
  const session = sessions.get(id)
  if (!session) throw new Error('the session was released')
  return session
}
parentPort.on('message', async (msg) => {
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
      // The inputs' memory goes back for reuse; outputs move too (transfer, no copy).
      const returned = msg.feeds.filter((f) => ArrayBuffer.isView(f.data)).map((f) => f.data.buffer)
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
 * worker with no copy; anything else (a view of a request body, which a shadow version or the cache
 * may still read) is copied once into a buffer of its own, which then moves. The worker hands every
 * moved buffer back with the results, for the next batch (recycleMovable).
 */
function feedsFor(inputs: Tensor[]): { feeds: unknown[]; transfer: ArrayBuffer[] } {
  const transfer: ArrayBuffer[] = []
  const feeds = inputs.map((tensor) => {
    const type = ORT_TYPE[tensor.datatype]
    if (!type) throw new Error(`datatype ${tensor.datatype} cannot be fed to onnxruntime`)
    if (Array.isArray(tensor.data)) {
      return { name: tensor.name, type, dims: tensor.shape, data: tensor.data.map((b) => utf8.decode(b)) }
    }
    const numeric = tensor.data as Exclude<TensorData, Uint8Array[]>
    const data = isMovable(numeric)
      ? numeric
      : movableCopy(numeric, tensor.datatype as Exclude<Datatype, 'BYTES'>)
    transfer.push(data.buffer as ArrayBuffer)
    return { name: tensor.name, type, dims: tensor.shape, data }
  })
  return { feeds, transfer }
}

/**
 * Why a call failed when its worker thread exited or was stopped (an error in the thread, a run
 * that outlived the model's run_timeout_s): the thread, not the input, is to blame, so the model's
 * instance is reopened on a live thread (see OnnxBackend).
 */
export class WorkerExitedError extends Error {
  override name = 'WorkerExitedError'
}

/** A session hosted by a SessionHost; `host` tells a pool where the model's other instances are. */
export interface HostedSession extends OnnxSession {
  readonly host: SessionHost
}

/**
 * One worker thread hosting many sessions (a pool places them, see worker-pool.ts): the event loop
 * stays free while they compute (requests keep being parsed, deadlines fire on time), and sessions
 * on different hosts really run at once. Batches move to the worker and results move back without
 * copies; a lone request's input is copied once (see feedsFor).
 */
export class SessionHost {
  private readonly worker: Worker
  private readonly pending = new Map<
    number,
    { resolve: (reply: WorkerReply) => void; reject: (error: Error) => void }
  >()
  private nextId = 0
  private nextSession = 0
  private exited?: WorkerExitedError
  /** The flag the thread checks before each call: 1 once it is to stop. */
  private readonly stopFlag = new Int32Array(new SharedArrayBuffer(4))
  /** Resolves once the thread has really ended (a stopped thread may still finish a run first). */
  readonly ended: Promise<void>
  /** Sessions opened here and not released: what placement balances. */
  sessions = 0
  /** Set when a watchdog gave the thread up (abandon): the model whose run hung is to blame, not its neighbours. */
  abandoned = false

  /** Starts the thread; throws when it cannot be created (ERR_WORKER_INIT_FAILED, no memory). */
  constructor(private readonly onExit: (host: SessionHost) => void = () => {}) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { ortPath, stop: this.stopFlag.buffer },
    })
    this.worker.on('message', (reply: WorkerReply) => {
      const waiter = this.pending.get(reply.id)
      this.pending.delete(reply.id)
      if (this.pending.size === 0) this.worker.unref()
      if (!waiter) return
      if (reply.ok) waiter.resolve(reply)
      else waiter.reject(new Error(reply.message))
    })
    this.worker.on('error', (err) =>
      this.fail(new WorkerExitedError(`its onnxruntime worker thread failed: ${err.message}`)),
    )
    this.ended = new Promise((resolve) => {
      this.worker.on('exit', (code) => {
        this.fail(new WorkerExitedError(`its onnxruntime worker thread exited (code ${code})`))
        resolve()
      })
    })
    // After the listeners (adding one refs the worker again): an idle thread of the pool must not
    // keep the process alive; a call in flight does (see call).
    this.worker.unref()
  }

  /** False once the thread failed, exited or was stopped: nothing more can be opened or run here. */
  get alive(): boolean {
    return this.exited === undefined
  }

  /** Why the thread is no longer alive. */
  get exitReason(): string | undefined {
    return this.exited?.message
  }

  private fail(error: WorkerExitedError): void {
    if (this.exited) return
    this.exited = error
    for (const waiter of this.pending.values()) waiter.reject(error)
    this.pending.clear()
    this.worker.unref()
    this.onExit(this)
  }

  private call(message: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
    return new Promise<WorkerReply>((resolve, reject) => {
      if (this.exited) return reject(this.exited)
      const id = this.nextId++
      if (this.pending.size === 0) this.worker.ref()
      this.pending.set(id, { resolve, reject })
      this.worker.postMessage({ ...message, id }, transfer)
    })
  }

  /** Opens a session of the model on this thread; rejects with onnxruntime's reason. */
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
    return {
      host: this,
      inputMetadata: loaded.inputMetadata ?? [],
      outputMetadata: loaded.outputMetadata ?? [],
      run: async (inputs, outputNames) => {
        const { feeds, transfer } = feedsFor(inputs)
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
   * Gives the thread up at once: its calls in flight and its sessions fail with `reason` from now
   * on, and the thread exits as soon as onnxruntime hands control back (the run that hung it
   * finishes first; see stop). Used by the run watchdog (a model's run_timeout_s).
   */
  abandon(reason: string): void {
    this.abandoned = true
    this.stop()
    this.fail(new WorkerExitedError(reason))
  }

  /**
   * Asks the thread to exit before its next call. Never worker.terminate() here: terminating a
   * thread while onnxruntime-node runs a session on it aborts the whole process (the binding throws
   * a C++ Napi::Error nothing catches), so the thread leaves by itself between calls.
   */
  private stop(): void {
    Atomics.store(this.stopFlag, 0, 1)
    try {
      this.worker.postMessage({ type: 'exit' })
    } catch {
      // The thread is gone already.
    }
  }

  /** Stops the thread once its current call is done; its sessions fail from then on. */
  async terminate(): Promise<void> {
    // Referenced while it ends: an idle thread is unreferenced, and a process awaiting only an
    // unreferenced thread would exit before it does.
    this.worker.ref()
    this.stop()
    await this.ended
  }
}
