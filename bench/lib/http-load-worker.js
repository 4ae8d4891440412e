// The load client of bench/lib/http-load.js, in a worker thread of its own so the bench's main thread
// (orchestration, raw onnxruntime runs) never delays a request. Keep-alive undici pool, closed loop.
import { parentPort, workerData } from 'node:worker_threads'
import { Pool } from 'undici'
import { closedLoop } from './measure.js'

const { url, path, headers, concurrency } = workerData
const body = Buffer.from(workerData.body)
const pool = new Pool(url, { connections: concurrency, pipelining: 1 })
let batches = 0

/** `batch;desc=N` of Server-Timing: the size of the batch this request rode in. */
function batchOf(header) {
  const match = /batch;desc="?(\d+)/.exec(String(header ?? ''))
  return match ? Number(match[1]) : undefined
}

const task = async () => {
  const res = await pool.request({ path, method: 'POST', headers, body })
  const bytes = Buffer.from(await res.body.arrayBuffer())
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${bytes.toString()}`)
  if (bytes.length !== Number(res.headers['inference-header-content-length']) + 8)
    throw new Error('unexpected response size')
  const batch = batchOf(res.headers['server-timing'])
  // Each batch of N single-item requests adds N × 1/N = 1: the number of batches the daemon ran.
  if (batch) batches += 1 / batch
  return 1
}

parentPort.on('message', async (msg) => {
  if (msg.type === 'close') {
    await pool.close()
    parentPort.close()
    return
  }
  const r = await closedLoop(task, {
    concurrency,
    durationMs: msg.durationMs,
    warmupMs: msg.warmupMs,
    onMeasureStart: () => {
      batches = 0
    },
  })
  parentPort.postMessage({
    items: r.items,
    seconds: r.seconds,
    itemsPerSecond: r.itemsPerSecond,
    errors: r.errors,
    firstError: r.firstError ? String(r.firstError.message ?? r.firstError) : undefined,
    meanBatch: batches > 0 ? r.items / batches : undefined,
  })
})
