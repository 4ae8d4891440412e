import { createRequire } from 'node:module'
import { Worker } from 'node:worker_threads'
import type * as ort from 'onnxruntime-node'
import { isMovable, movableCopy, recycleMovable } from '../infer/tensor-data.js'
import type { Datatype, Tensor, TensorData } from '../infer/types.js'
import type { OnnxSession } from './onnx-session.js'
import { fromOrtParts, ORT_TYPE } from './onnx-tensors.js'

/**
 * The worker's whole program. It is plain CommonJS evaluated from a string so the same code runs
 * from dist/ and from the TypeScript sources under test, with no build step for a worker file.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const ort = require(workerData.ortPath)
let session
const reply = (message, transfer) => {
  try { parentPort.postMessage(message, transfer) } catch { parentPort.postMessage(message) }
}
parentPort.on('message', async (msg) => {
  try {
    if (msg.type === 'load') {
      session = await ort.InferenceSession.create(msg.modelPath, msg.options)
      reply({ id: msg.id, ok: true, inputMetadata: session.inputMetadata, outputMetadata: session.outputMetadata })
    } else if (msg.type === 'run') {
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
      if (session) await session.release()
      session = undefined
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
 * A session in a worker thread: the event loop stays free while it computes (requests keep being
 * parsed, deadlines fire on time) and several instances really run at once. Batches move to the
 * worker and results move back without copies; a lone request's input is copied once (see feedsFor).
 */
export async function openWorkerSession(
  modelPath: string,
  options: ort.InferenceSession.SessionOptions,
): Promise<OnnxSession> {
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ortPath } })
  worker.unref()
  const pending = new Map<number, { resolve: (reply: WorkerReply) => void; reject: (error: Error) => void }>()
  let nextId = 0
  let exited: Error | undefined
  worker.on('message', (reply: WorkerReply) => {
    const waiter = pending.get(reply.id)
    pending.delete(reply.id)
    if (!waiter) return
    if (reply.ok) waiter.resolve(reply)
    else waiter.reject(new Error(reply.message))
  })
  const failAll = (error: Error) => {
    exited = error
    for (const waiter of pending.values()) waiter.reject(error)
    pending.clear()
  }
  worker.on('error', failAll)
  worker.on('exit', (code) => failAll(new Error(`the onnxruntime worker thread exited (code ${code})`)))
  const call = (message: Record<string, unknown>, transfer: ArrayBuffer[] = []) =>
    new Promise<WorkerReply>((resolve, reject) => {
      if (exited) return reject(exited)
      const id = nextId++
      pending.set(id, { resolve, reject })
      worker.postMessage({ ...message, id }, transfer)
    })
  let loaded: WorkerReply
  try {
    loaded = await call({ type: 'load', modelPath, options })
  } catch (err) {
    await worker.terminate()
    throw err
  }
  return {
    inputMetadata: loaded.inputMetadata ?? [],
    outputMetadata: loaded.outputMetadata ?? [],
    async run(inputs, outputNames) {
      const { feeds, transfer } = feedsFor(inputs)
      const reply = await call({ type: 'run', feeds, outputNames }, transfer)
      for (const buffer of reply.returned ?? []) recycleMovable(buffer)
      return (reply.outputs ?? []).map((o) => fromOrtParts(o.name, o.type, o.dims, o.data))
    },
    async release() {
      if (!exited) await call({ type: 'release' }).catch(() => undefined)
      await worker.terminate()
    },
  }
}
