import { parentPort } from 'node:worker_threads'
import { runShare, type ShareTask, type WorkerMessage } from './run-share.js'

// Entry of a load-generating worker thread: announce readiness (imports done), run the share it is
// given, post the encoded results.
const port = parentPort!
const post = (message: WorkerMessage) => port.postMessage(message)
port.once('message', async (task: ShareTask) => {
  const outcome = await runShare(task, (progress) => post({ type: 'progress', progress }))
  post({
    type: 'done',
    recorder: outcome.recorder.encode(),
    lastCompletionEpoch: outcome.lastCompletionEpoch,
  })
})
post({ type: 'ready' })
