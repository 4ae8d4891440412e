import { type ChildProcess, spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import type * as ort from 'onnxruntime-node'
import { isMovable, movableCopy, recycleMovable } from '../infer/tensor-data.js'
import type { Datatype, Tensor, TensorData } from '../infer/types.js'
import type { OnnxSession } from './onnx-session.js'
import { fromOrtParts, ORT_TYPE, ortTypedArray } from './onnx-tensors.js'
import {
  alignShm,
  closeShm,
  createShmFile,
  readAll,
  type ShmFile,
  ShmLock,
  shmAvailable,
  unlinkShm,
  writeAll,
} from './shm-file.js'

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
// A worker process may be given a file in /dev/shm for tensors (see SessionHost): inputs are read
// from it, outputs written into it after them; what does not fit (ENOSPC) travels in the message.
const fs = require('node:fs')
const shmFd = !parentPort && process.env.HELIX_SHM ? fs.openSync(process.env.HELIX_SHM, 'r+') : undefined
const ARRAYS = {
  bool: Uint8Array, uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array,
  uint32: Uint32Array, int32: Int32Array, uint64: BigUint64Array, int64: BigInt64Array,
  float16: Uint16Array, float32: Float32Array, float64: Float64Array,
}
// Input memory by byte length, reused run after run (a fresh buffer per batch costs a zero fill and
// the garbage collector's time).
const spare = new Map()
const fromShm = (f) => {
  const Ctor = ARRAYS[f.type]
  const kept = spare.get(f.nbytes)
  const data = new Ctor(kept && kept.length ? kept.pop() : new ArrayBuffer(f.nbytes))
  const bytes = new Uint8Array(data.buffer)
  for (let done = 0; done < bytes.length; ) {
    const read = fs.readSync(shmFd, bytes, done, bytes.length - done, f.at + done)
    if (read === 0) throw new Error("input '" + f.name + "' lies past the end of the shm file")
    done += read
  }
  return data
}
const toShm = (outputs, at) => {
  for (const o of outputs) {
    if (!ArrayBuffer.isView(o.data)) continue
    const bytes = new Uint8Array(o.data.buffer, o.data.byteOffset, o.data.byteLength)
    try {
      for (let done = 0; done < bytes.length; ) done += fs.writeSync(shmFd, bytes, done, bytes.length - done, at + done)
    } catch (err) {
      if (err && err.code === 'ENOSPC') return
      throw err
    }
    o.at = at
    o.nbytes = bytes.length
    o.data = undefined
    at = Math.ceil((at + bytes.length) / 64) * 64
  }
}
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
      const read = []
      for (const f of msg.feeds) {
        const data = f.at === undefined ? f.data : fromShm(f)
        if (f.at !== undefined) read.push(data.buffer)
        feeds[f.name] = new ort.Tensor(f.type, data, f.dims)
      }
      let results
      try {
        results = msg.outputNames ? await session.run(feeds, msg.outputNames) : await session.run(feeds)
      } finally {
        for (const buffer of read) {
          const kept = spare.get(buffer.byteLength) || []
          if (kept.length < 4) kept.push(buffer)
          spare.set(buffer.byteLength, kept)
        }
      }
      const names = msg.outputNames || session.outputNames
      const outputs = names.map((name) => ({ name, type: results[name].type, dims: results[name].dims, data: results[name].data }))
      if (msg.outAt !== undefined) toShm(outputs, msg.outAt)
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
  /** An output's data, or where it lies in the shm file (`at`, `nbytes`). */
  outputs?: { name: string; type: string; dims: number[]; data?: unknown; at?: number; nbytes?: number }[]
  /** The moved input buffers, handed back after the run. */
  returned?: ArrayBuffer[]
}

const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node')
const utf8 = new TextDecoder()

type NumericData = Exclude<TensorData, Uint8Array[]>

/** A tensor's onnxruntime type, and its data: numeric, or for BYTES the finished feed (strings travel in the message). */
function feedParts(tensor: Tensor): { type: string; numeric?: NumericData; strings?: unknown } {
  const type = ORT_TYPE[tensor.datatype]
  if (!type) throw new Error(`datatype ${tensor.datatype} cannot be fed to onnxruntime`)
  if (Array.isArray(tensor.data)) {
    return {
      type,
      strings: { name: tensor.name, type, dims: tensor.shape, data: tensor.data.map((b) => utf8.decode(b)) },
    }
  }
  return { type, numeric: tensor.data as NumericData }
}

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
    const { type, strings, numeric } = feedParts(tensor)
    if (!numeric) return strings
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
 * file in /dev/shm, but a native crash inside onnxruntime (SIGSEGV, SIGBUS, abort) ends only that process, where
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
 * serialization (typed arrays travel as their bytes), and with a file in /dev/shm for the tensors of
 * runs where the machine has one (see SessionHost.runThroughShm). It leaves when the daemon's end of the channel
 * closes, so a daemon killed with SIGKILL leaves no worker behind. What it writes on stderr (what
 * onnxruntime prints before an abort) is kept for the exit reason; its stdout is the daemon's log's
 * business and is not shared.
 */
function processChannel(
  events: ChannelEvents,
  tensorFile: boolean,
): WorkerChannel & { pid: number | undefined; shm: ShmFile | undefined } {
  const shm = tensorFile ? openTensorFile() : undefined
  const child: ChildProcess = spawn(process.execPath, ['-e', WORKER_SOURCE], {
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    serialization: 'advanced',
    env: { ...process.env, HELIX_ORT_PATH: ortPath, ...(shm ? { HELIX_SHM: shm.path } : {}) },
  })
  let stderr = ''
  // Read while the worker lives, but never what keeps the daemon running (see unref).
  ;(child.stderr as (NodeJS.ReadableStream & { unref?: () => void }) | null)?.unref?.()
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEPT)
  })
  child.on('message', (reply) => {
    // The worker opens the file before it reads any message: once it answers, the name can go.
    if (shm) unlinkShm(shm)
    events.message(reply as WorkerReply)
  })
  child.on('error', (err) => {
    const reason = `its onnxruntime worker process failed: ${err.message}`
    // A process that never started (EAGAIN, ENOMEM) has no exit to wait for.
    if (child.pid === undefined) events.ended(reason)
    else events.failed(reason)
  })
  // 'close' comes after its stderr has been read to the end.
  child.on('close', (code, signal) => {
    if (shm) closeShm(shm)
    const said = stderr.trim().split('\n').filter(Boolean).at(-1)
    const how = signal ? `was killed by ${signal}` : `exited (code ${code})`
    events.ended(`its onnxruntime worker process ${how}${said ? ` (${said})` : ''}`)
  })
  const channel = () => child.channel as { ref(): void; unref(): void } | null | undefined
  if (child.pid === undefined && shm) closeShm(shm)
  return {
    pid: child.pid,
    shm,
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
 * The file a worker process's tensors travel through, where /dev/shm exists; without one (or when it
 * cannot be made) they travel in the IPC channel's messages.
 */
function openTensorFile(): ShmFile | undefined {
  if (!shmAvailable()) return undefined
  try {
    return createShmFile('helix-onnx')
  } catch {
    return undefined
  }
}

/**
 * A run's inputs for a worker process with a shm file: each numeric tensor's bytes written into the
 * file (one pwrite) and named by offset; BYTES, and a tensor that does not fit (ENOSPC: /dev/shm is
 * full), go in the message. `end` is where the outputs may start.
 */
function feedsThroughShm(inputs: Tensor[], fd: number): { feeds: unknown[]; end: number } {
  let at = 0
  let full = false
  const feeds = inputs.map((tensor) => {
    const { type, strings, numeric: data } = feedParts(tensor)
    if (!data) return strings
    if (!full) {
      try {
        writeAll(fd, new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at)
        const feed = { name: tensor.name, type, dims: tensor.shape, at, nbytes: data.byteLength }
        at = alignShm(at + data.byteLength)
        return feed
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
        full = true
      }
    }
    return { name: tensor.name, type, dims: tensor.shape, data }
  })
  return { feeds, end: at }
}

/**
 * A worker process has the inputs once they are written to its shm file or sent (the IPC channel
 * serializes a message as it is sent): a batch's own buffer then goes back to the spare buffers for
 * the next batch, as a worker thread hands it back after the run (a transferred buffer cannot be
 * read here any more either).
 */
function recycleSent(inputs: Tensor[]): void {
  for (const tensor of inputs) {
    if (!Array.isArray(tensor.data) && isMovable(tensor.data))
      recycleMovable(tensor.data.buffer as ArrayBuffer)
  }
}

/** An output the worker process wrote into the shm file, read into memory of its own. */
function outputFromShm(output: { name: string; type: string; nbytes?: number; at?: number }, fd: number) {
  const Ctor = ortTypedArray(output.type)
  if (!Ctor)
    throw new Error(`output '${output.name}' has onnx type ${output.type}, which helix cannot return`)
  const nbytes = output.nbytes ?? 0
  const data = new Ctor(nbytes / Ctor.BYTES_PER_ELEMENT)
  if (!readAll(fd, new Uint8Array(data.buffer, 0, nbytes), output.at ?? 0))
    throw new Error(`output '${output.name}' lies past the end of the worker's shm file`)
  return data
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
  /** The worker process's tensor file, one run at a time (isolation: process, where /dev/shm exists). */
  private readonly shm: ShmFile | undefined
  private readonly shmLock = new ShmLock()
  /** Sessions opened here and not released: what placement balances. */
  sessions = 0
  /** Set when a watchdog gave the worker up (abandon): the model whose run hung is to blame, not its neighbours. */
  abandoned = false

  /** Starts the worker; throws when it cannot be created (ERR_WORKER_INIT_FAILED, no memory). */
  constructor(
    private readonly onExit: (host: SessionHost) => void = () => {},
    readonly isolation: Isolation = 'thread',
    /** A worker process's tensors travel through a file in /dev/shm where there is one (false: in its messages). */
    tensorFile = true,
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
      const channel = processChannel(events, tensorFile)
      this.pid = channel.pid
      this.shm = channel.shm
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
        const shm = this.shm
        if (shm) return this.shmLock.exclusive(() => this.runThroughShm(session, shm.fd, inputs, outputNames))
        const { feeds, transfer } = feedsFor(inputs, copied)
        const replied = this.call({ type: 'run', session, feeds, outputNames }, transfer)
        if (copied) recycleSent(inputs)
        const reply = await replied
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

  /** One run of a worker process's session with its tensors in the shm file (the caller holds shmLock). */
  private async runThroughShm(
    session: number,
    fd: number,
    inputs: Tensor[],
    outputNames: string[] | undefined,
  ): Promise<Tensor[]> {
    // A worker that ended while this run waited for the file took the file with it (its descriptor is
    // closed, and its number may belong to another file by now): fail as the run would have.
    if (this.exited) throw this.exited
    const { feeds, end } = feedsThroughShm(inputs, fd)
    const replied = this.call({ type: 'run', session, feeds, outputNames, outAt: end })
    recycleSent(inputs)
    const reply = await replied
    if (this.exited) throw this.exited
    return (reply.outputs ?? []).map((o) =>
      fromOrtParts(o.name, o.type, o.dims, o.at === undefined ? o.data : outputFromShm(o, fd)),
    )
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
