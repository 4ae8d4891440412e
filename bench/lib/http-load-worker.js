// The load client of bench/lib/http-load.js, in a worker thread of its own so the bench's main thread
// (orchestration, raw onnxruntime runs) never delays a request. Closed loop over keep-alive
// connections, one per client: helix bench's own HTTP/1.1 lanes (dist/bench/http1-lane.js), which
// cost the shared CPU less than undici (bench/README.md, "helix bench vs autocannon").
import { parentPort, workerData } from 'node:worker_threads'
import { Http1Lane, laneTarget } from '../../dist/bench/http1-lane.js'
import { closedLoop } from './measure.js'

const { url, path, headers, concurrency } = workerData
const target = laneTarget(
  { origin: new URL(url).origin, path, method: 'POST', headers, body: new Uint8Array(workerData.body) },
  30_000,
)
const lanes = Array.from({ length: concurrency }, () => new Http1Lane(target))
let batches = 0

/** `batch;desc=N` of Server-Timing: the size of the batch this request rode in. */
function batchOf(header) {
  const match = /batch;desc="?(\d+)/.exec(String(header ?? ''))
  return match ? Number(match[1]) : undefined
}

const task = (index) =>
  new Promise((resolve, reject) => {
    lanes[index].send((status, serverTiming, error) => {
      if (error || status !== 200) return reject(new Error(error ?? `HTTP ${status}`))
      const batch = batchOf(serverTiming)
      // Each batch of N single-item requests adds N × 1/N = 1: the number of batches the daemon ran.
      if (batch) batches += 1 / batch
      resolve(1)
    })
  })

parentPort.on('message', async (msg) => {
  if (msg.type === 'close') {
    for (const lane of lanes) lane.close()
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
