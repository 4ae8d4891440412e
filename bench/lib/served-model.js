// A real `helix serve` child process over a one-model repository, loaded by bench/lib/http-load.js:
// single-item FP32 requests through the binary tensor extension (binary output too).
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { startDaemon } from './daemon.js'
import { startHttpLoad } from './http-load.js'
import { processCpuSeconds } from './measure.js'

const ownCpuSeconds = () => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1e6
}

/**
 * Serves `modelPath` as model `cls` with `config` (written to config.yaml) and prepares the load:
 * `concurrency` connections each sending `item` (one item of `itemShape`, input `input`, output
 * `output`); `modelFile` is model.onnx or, for the PyTorch backend, model.pt (for TensorFlow.js,
model.json, with its weight shards in `companions`, copied beside it under their own names). `measure(ms, warmupMs)` runs the load; `cpuSeconds()` is daemon + bench process CPU.
 */
export async function startServedModel({
  modelPath,
  config,
  input,
  output,
  item,
  itemShape,
  concurrency,
  nodeArgs = [],
  modelFile = 'model.onnx',
  companions = [],
}) {
  const dir = await mkdtemp(join(tmpdir(), 'helix-bench-'))
  await mkdir(join(dir, 'models', 'cls', '1'), { recursive: true })
  await copyFile(modelPath, join(dir, 'models', 'cls', '1', modelFile))
  for (const file of companions) await copyFile(file, join(dir, 'models', 'cls', '1', basename(file)))
  const yaml = Object.entries(config).map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
  await writeFile(join(dir, 'models', 'cls', 'config.yaml'), `${yaml.join('\n')}\n`)
  // startDaemon runs it with --no-auth: this measures inference, not authentication (bench/auth-overhead.js).
  const daemon = await startDaemon(dir, { nodeArgs })
  await waitUntilReady(daemon.url, 'cls')
  const tensor = Buffer.from(item.buffer, item.byteOffset, item.byteLength)
  const header = Buffer.from(
    JSON.stringify({
      inputs: [
        {
          name: input,
          datatype: 'FP32',
          shape: [1, ...itemShape],
          parameters: { binary_data_size: tensor.length },
        },
      ],
      outputs: [{ name: output, parameters: { binary_data: true } }],
    }),
  )
  await checkOneRequest(daemon.url, header, tensor)
  const load = await startHttpLoad({
    url: daemon.url,
    path: '/v2/models/cls/infer',
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.length),
    },
    body: Buffer.concat([header, tensor]),
    concurrency,
  })
  return {
    pid: daemon.pid,
    measure: async (ms, warmupMs = 500) => {
      const r = await load.measure(ms, warmupMs)
      if (r.errors) throw new Error(`${r.errors} failed requests, first: ${r.firstError}`)
      return r
    },
    cpuSeconds: () => (processCpuSeconds(daemon.pid) ?? Number.NaN) + ownCpuSeconds(),
    close: async () => {
      await load.close()
      const code = await daemon.stop()
      await rm(dir, { recursive: true, force: true })
      if (code !== 0) throw new Error(`helix serve exited with ${code} on SIGTERM`)
    },
  }
}

/**
 * One request before the load, read in full: the load loop reads only status and Server-Timing, so
 * this is where a wrong answer (not binary, not one item's output) stops the bench.
 */
async function checkOneRequest(url, header, tensor) {
  const res = await fetch(`${url}/v2/models/cls/infer`, {
    method: 'POST',
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.length),
    },
    body: Buffer.concat([header, tensor]),
  })
  const bytes = Buffer.from(await res.arrayBuffer())
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${bytes.toString()}`)
  const jsonLength = Number(res.headers.get('inference-header-content-length'))
  const outputs = JSON.parse(bytes.subarray(0, jsonLength).toString()).outputs
  const expected = outputs.reduce((sum, o) => sum + o.parameters.binary_data_size, 0)
  if (bytes.length !== jsonLength + expected || outputs[0].shape[0] !== 1)
    throw new Error(`unexpected response: ${bytes.subarray(0, jsonLength).toString()}`)
}

/** The daemon listens before its models have loaded: poll the model's ready endpoint. */
async function waitUntilReady(url, model, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const res = await fetch(`${url}/v2/models/${model}/ready`).catch(() => undefined)
    await res?.arrayBuffer()
    if (res?.status === 200) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`model ${model} was not ready within ${timeoutMs} ms`)
}
