import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import type { TfjsModelFiles } from './tfjs-files.js'
import type { TfjsFeed, TfjsTensorInfo } from './tfjs-tensors.js'

/**
 * The worker thread's whole program: one TensorFlow.js runtime on the WebAssembly backend holding
 * one model (an instance), running one batch at a time. Plain CommonJS evaluated from a string so
 * the same code runs from dist/ and from the TypeScript sources under test, as the ONNX worker
 * threads do. The runtime is tfjs-backend-wasm with SIMD: in Node its own threads are off
 * (WASM_HAS_MULTITHREAD_SUPPORT is false under Node, tfjs issue 3830), so instances in separate
 * worker threads are how a model uses several cores.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const tf = require(workerData.core)
require(workerData.wasm)
const converter = require(workerData.converter)
const layers = require(workerData.layers)
const started = tf.setBackend('wasm').then((ok) => {
  if (!ok) throw new Error('the TensorFlow.js WebAssembly backend did not start')
  return tf.ready()
})
let model
let kind
let asynchronous = false
const reply = (message, transfer) => {
  try { parentPort.postMessage(message, transfer) } catch { parentPort.postMessage(message) }
}
const dims = (shape) => (shape ? shape.map((d) => (d === null || d === undefined ? -1 : d)) : undefined)
const signature = () => kind === 'graph'
  ? {
      inputs: model.inputNodes.map((name, i) => ({ name, shape: dims(model.inputs[i].shape), dtype: model.inputs[i].dtype })),
      // A graph node's dtype attribute is often its inputs' type (Greater: T), not its output's: outputs
      // are described by the signature, config.yaml or a probe run instead.
      outputs: model.outputNodes.map((name) => ({ name })),
    }
  : {
      inputs: model.inputs.map((t, i) => ({ name: model.inputNames[i], shape: dims(t.shape), dtype: t.dtype })),
      outputs: model.outputs.map((t, i) => ({ name: model.outputNames[i], shape: dims(t.shape), dtype: t.dtype })),
    }
async function execute(feeds, outputNames) {
  const tensors = feeds.map((f) => tf.tensor(f.data, f.shape, f.dtype))
  let results = []
  try {
    if (kind === 'graph') {
      const named = {}
      feeds.forEach((f, i) => { named[f.name] = tensors[i] })
      const names = outputNames || model.outputNodes
      if (!asynchronous) {
        try {
          results = model.execute(named, names)
        } catch (err) {
          // Control flow (While, If …) and dynamic-shape ops only run through executeAsync.
          if (!/executeAsync/.test(String(err && err.message))) throw err
          asynchronous = true
        }
      }
      if (asynchronous) results = await model.executeAsync(named, names)
      results = Array.isArray(results) ? results : [results]
      return results.map((t, i) => ({ name: names[i], tensor: t }))
    }
    const ordered = model.inputNames.map((name) => tensors[feeds.findIndex((f) => f.name === name)])
    results = tf.tidy(() => model.predictOnBatch(ordered.length === 1 ? ordered[0] : ordered))
    results = Array.isArray(results) ? results : [results]
    const all = results.map((t, i) => ({ name: model.outputNames[i], tensor: t }))
    return outputNames ? outputNames.map((name) => all.find((o) => o.name === name)) : all
  } finally {
    tf.dispose(tensors)
  }
}
parentPort.on('message', async (msg) => {
  try {
    await started
    if (msg.type === 'load') {
      kind = msg.kind
      const handler = tf.io.fromMemory(msg.artifacts)
      model = kind === 'graph' ? await converter.loadGraphModel(handler) : await layers.loadLayersModel(handler)
      reply({ id: msg.id, ok: true, signature: signature(), backend: tf.getBackend(), version: tf.version_core })
    } else if (msg.type === 'run') {
      const named = await execute(msg.feeds, msg.outputNames)
      let outputs
      try {
        outputs = named.map(({ name, tensor }) => {
          let data = tensor.dataSync()
          if (ArrayBuffer.isView(data) && data.byteLength !== data.buffer.byteLength) data = data.slice()
          return { name, dtype: tensor.dtype, shape: tensor.shape, data }
        })
      } finally {
        tf.dispose(named.map((o) => o.tensor))
      }
      // The inputs' memory goes back for reuse; outputs move too (transfer, no copy).
      const returned = msg.feeds.filter((f) => ArrayBuffer.isView(f.data)).map((f) => f.data.buffer)
      const buffers = [...new Set([...returned, ...outputs.filter((o) => ArrayBuffer.isView(o.data)).map((o) => o.data.buffer)])]
      reply({ id: msg.id, ok: true, outputs, returned }, buffers)
    } else if (msg.type === 'memory') {
      const { numTensors, numBytes } = tf.memory()
      reply({ id: msg.id, ok: true, memory: { numTensors, numBytes } })
    } else if (msg.type === 'dispose') {
      if (model) model.dispose()
      model = undefined
      tf.disposeVariables()
      const { numTensors, numBytes } = tf.memory()
      reply({ id: msg.id, ok: true, memory: { numTensors, numBytes } })
    }
  } catch (err) {
    reply({ id: msg.id, ok: false, message: String((err && err.message) || err) })
  }
})
`

const resolvePackage = createRequire(import.meta.url).resolve
/** The packages the worker loads, resolved here so the worker finds them from any directory. */
const PACKAGES = {
  core: resolvePackage('@tensorflow/tfjs-core'),
  wasm: resolvePackage('@tensorflow/tfjs-backend-wasm'),
  converter: resolvePackage('@tensorflow/tfjs-converter'),
  layers: resolvePackage('@tensorflow/tfjs-layers'),
}

/** What a worker reports once the model loaded. */
export interface TfjsLoaded {
  signature: { inputs: TfjsTensorInfo[]; outputs: TfjsTensorInfo[] }
  /** The tfjs backend in use ('wasm'). */
  backend: string
  /** tfjs-core's version. */
  version: string
}

/** tf.memory() of a worker: what a leak test watches. */
export interface TfjsMemory {
  numTensors: number
  numBytes: number
}

export interface TfjsOutput {
  name: string
  dtype: string
  shape: number[]
  data: unknown
}

interface WorkerReply extends Partial<TfjsLoaded> {
  id: number
  ok: boolean
  message?: string
  outputs?: TfjsOutput[]
  returned?: ArrayBuffer[]
  memory?: TfjsMemory
}

/** The worker thread stopped (terminated, crashed, out of memory): its instance must be replaced. */
export class TfjsWorkerExit extends Error {
  override name = 'TfjsWorkerExit'
}

/**
 * One model instance in its own worker thread: the event loop stays free while it computes, and
 * instances of a model run at once on different cores. Batches move to the worker and results move
 * back without copies (transferred ArrayBuffers).
 */
export class TfjsWorker {
  private readonly worker: Worker
  private readonly pending = new Map<
    number,
    { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }
  >()
  private nextId = 0
  private exited?: Error
  private stopping = false

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: PACKAGES })
    this.worker.on('message', (reply: WorkerReply) => {
      const waiter = this.pending.get(reply.id)
      this.pending.delete(reply.id)
      if (this.pending.size === 0) this.worker.unref()
      if (!waiter) return
      if (reply.ok) waiter.resolve(reply)
      else waiter.reject(new Error(reply.message))
    })
    this.worker.on('error', (err) =>
      this.fail(new TfjsWorkerExit(`the TensorFlow.js worker thread failed: ${err.message}`)),
    )
    this.worker.on('exit', (code) =>
      this.fail(
        new TfjsWorkerExit(
          this.stopping ? 'the model was unloaded' : `the TensorFlow.js worker thread exited (code ${code})`,
        ),
      ),
    )
    // An idle instance must not keep the process alive; a call in flight does (see call).
    this.worker.unref()
  }

  /** False once the thread failed or exited. */
  get alive(): boolean {
    return this.exited === undefined
  }

  /** Calls waiting for an answer: what picks the least busy instance. */
  get inFlight(): number {
    return this.pending.size
  }

  private fail(error: Error): void {
    if (this.exited) return
    this.exited = error
    for (const waiter of this.pending.values()) waiter.reject(error)
    this.pending.clear()
    this.worker.unref()
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

  /** Loads the model from its files' contents (the weights move to the worker). */
  async load(files: TfjsModelFiles): Promise<TfjsLoaded> {
    const weights = files.artifacts.weightData
    const transfer = weights instanceof ArrayBuffer ? [weights] : []
    const reply = await this.call({ type: 'load', kind: files.kind, artifacts: files.artifacts }, transfer)
    return {
      signature: reply.signature ?? { inputs: [], outputs: [] },
      backend: reply.backend ?? 'wasm',
      version: reply.version ?? 'unknown',
    }
  }

  /** Runs one batch; the fed buffers come back in `returned` for reuse. */
  async run(
    feeds: TfjsFeed[],
    transfer: ArrayBuffer[],
    outputNames?: string[],
  ): Promise<{ outputs: TfjsOutput[]; returned: ArrayBuffer[] }> {
    const reply = await this.call({ type: 'run', feeds, outputNames }, transfer)
    return { outputs: reply.outputs ?? [], returned: reply.returned ?? [] }
  }

  /** tf.memory() in the worker. */
  async memory(): Promise<TfjsMemory> {
    return (await this.call({ type: 'memory' })).memory as TfjsMemory
  }

  /** Disposes the model (tf.memory() after it), then stops the thread. Safe to call twice. */
  async stop(): Promise<TfjsMemory | undefined> {
    let memory: TfjsMemory | undefined
    if (this.alive && !this.stopping)
      memory = (await this.call({ type: 'dispose' }).catch(() => undefined))?.memory
    this.stopping = true
    await this.worker.terminate()
    return memory
  }
}
