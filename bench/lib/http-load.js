// Closed-loop HTTP load (one request body, `concurrency` keep-alive connections) driven from a worker
// thread, so measuring it costs the bench's main thread nothing. See http-load-worker.js.
import { Worker } from 'node:worker_threads'

/**
 * Starts the load worker for `url` + `path`; `measure(durationMs, warmupMs)` resolves with
 * { items, seconds, itemsPerSecond, errors, firstError, meanBatch }.
 */
export async function startHttpLoad({ url, path, headers, body, concurrency }) {
  const worker = new Worker(new URL('./http-load-worker.js', import.meta.url), {
    workerData: { url, path, headers, body: new Uint8Array(body), concurrency },
  })
  const failed = new Promise((_, reject) => worker.once('error', reject))
  failed.catch(() => undefined)
  return {
    measure: (durationMs, warmupMs) =>
      Promise.race([
        failed,
        new Promise((resolve) => {
          worker.once('message', resolve)
          worker.postMessage({ type: 'measure', durationMs, warmupMs })
        }),
      ]),
    close: async () => {
      worker.postMessage({ type: 'close' })
      await new Promise((resolve) => worker.once('exit', resolve))
    },
  }
}
