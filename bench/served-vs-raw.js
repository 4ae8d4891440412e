// Throughput of the PP-OCR text-direction classifier, in one run and one process tree, loopback only:
// (a) raw onnxruntime-node in this process at its best batch size,
// (b) `helix serve` (a real daemon child process) with dynamic batching, concurrency 32, binary extension,
// (c) the same daemon setup with batching off.
// The three are measured in interleaved rounds so a noisy, shared machine slows them alike.
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { Pool } from 'undici'
import { ROOT, startDaemon } from './lib/daemon.js'
import { closedLoop, processCpuSeconds, rate } from './lib/measure.js'

const MODEL = join(
  ROOT,
  'node_modules',
  '@gutenye',
  'ocr-models',
  'assets',
  'ch_ppocr_mobile_v2.0_cls_infer.onnx',
)
const ITEM_SHAPE = [3, 48, 192]
const ITEM_ELEMENTS = ITEM_SHAPE.reduce((a, b) => a * b, 1)
const CONCURRENCY = 32
const RAW_BATCHES = [1, 2, 4, 8, 16, 32]
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6)
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 2500)
const TARGETS = { servedVsRaw: 0.9, batchedVsUnbatched: 1.5 }

function randomItems(n) {
  const data = new Float32Array(n * ITEM_ELEMENTS)
  for (let i = 0; i < data.length; i++) data[i] = Math.random() * 2 - 1
  return data
}

const ownCpuSeconds = () => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1e6
}

/** (a): one session in this process; the batch size with the best throughput wins. */
async function rawRunner() {
  const session = await ort.InferenceSession.create(MODEL)
  const run = (batch, durationMs, warmupMs) => {
    const tensor = new ort.Tensor('float32', randomItems(batch), [batch, ...ITEM_SHAPE])
    return closedLoop(
      async () => {
        await session.run({ x: tensor })
        return batch
      },
      { durationMs, warmupMs },
    )
  }
  let best = { batch: 1, itemsPerSecond: 0 }
  for (const batch of RAW_BATCHES) {
    const r = await run(batch, 1500, 300)
    console.log(`  raw batch ${String(batch).padStart(2)}: ${rate(r.itemsPerSecond)}`)
    if (r.itemsPerSecond > best.itemsPerSecond) best = { batch, itemsPerSecond: r.itemsPerSecond }
  }
  return {
    batch: best.batch,
    measure: (ms) => run(best.batch, ms, 500),
    cpuSeconds: () => ownCpuSeconds(),
    close: () => session.release(),
  }
}

/** (b)/(c): a real `helix serve` over a model repository holding the cls model with this config. */
async function servedRunner(modelConfig) {
  const dir = await mkdtemp(join(tmpdir(), 'helix-bench-'))
  await mkdir(join(dir, 'models', 'cls', '1'), { recursive: true })
  await copyFile(MODEL, join(dir, 'models', 'cls', '1', 'model.onnx'))
  const yaml = Object.entries(modelConfig).map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
  await writeFile(join(dir, 'models', 'cls', 'config.yaml'), `${yaml.join('\n')}\n`)
  const daemon = await startDaemon(dir)
  const pool = new Pool(daemon.url, { connections: CONCURRENCY, pipelining: 1 })
  // One request body, built once: JSON header then the item's float32 bytes (binary tensor extension).
  const tensor = Buffer.from(randomItems(1).buffer)
  const header = Buffer.from(
    JSON.stringify({
      inputs: [
        {
          name: 'x',
          datatype: 'FP32',
          shape: [1, ...ITEM_SHAPE],
          parameters: { binary_data_size: tensor.length },
        },
      ],
      outputs: [{ name: 'softmax_0.tmp_0', parameters: { binary_data: true } }],
    }),
  )
  const body = Buffer.concat([header, tensor])
  const headers = {
    'content-type': 'application/octet-stream',
    'inference-header-content-length': String(header.length),
  }
  const task = async () => {
    const res = await pool.request({ path: '/v2/models/cls/infer', method: 'POST', headers, body })
    const bytes = Buffer.from(await res.body.arrayBuffer())
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${bytes.toString()}`)
    if (bytes.length !== Number(res.headers['inference-header-content-length']) + 8)
      throw new Error('unexpected response size')
    return 1
  }
  return {
    measure: async (ms) => {
      const r = await closedLoop(task, { concurrency: CONCURRENCY, durationMs: ms, warmupMs: 500 })
      if (r.errors) throw new Error(`${r.errors} failed requests, first: ${r.firstError?.message}`)
      return r
    },
    // The daemon's CPU plus this process's (the client's) while measuring.
    cpuSeconds: () => (processCpuSeconds(daemon.pid) ?? Number.NaN) + ownCpuSeconds(),
    close: async () => {
      await pool.close()
      const code = await daemon.stop()
      await rm(dir, { recursive: true, force: true })
      if (code !== 0) throw new Error(`helix serve exited with ${code} on SIGTERM`)
    },
  }
}

console.log(
  `PP-OCR cls (${MODEL.split('/').pop()}), item [${ITEM_SHAPE}] float32, concurrency ${CONCURRENCY}`,
)
const raw = await rawRunner()
const batched = await servedRunner({ max_batch_size: raw.batch, max_queue_delay_ms: 2 })
const unbatched = await servedRunner({ max_batch_size: 0 })
const modes = [
  { key: 'raw', label: `(a) raw onnxruntime-node, batch ${raw.batch}`, runner: raw },
  { key: 'batched', label: '(b) helix serve, dynamic batching', runner: batched },
  { key: 'unbatched', label: '(c) helix serve, batching off', runner: unbatched },
]
const totals = Object.fromEntries(modes.map((m) => [m.key, { items: 0, seconds: 0, cpu: 0 }]))
const ratios = { servedVsRaw: [], batchedVsUnbatched: [] }
try {
  for (let round = 1; round <= ROUNDS; round++) {
    const rates = {}
    for (const mode of modes) {
      const cpuBefore = mode.runner.cpuSeconds()
      const r = await mode.runner.measure(ROUND_MS)
      // Includes the 500 ms warm-up of every mode; the per-item figure scales it out.
      totals[mode.key].cpu += mode.runner.cpuSeconds() - cpuBefore
      totals[mode.key].items += r.items
      totals[mode.key].seconds += r.seconds
      rates[mode.key] = r.itemsPerSecond
    }
    ratios.servedVsRaw.push(rates.batched / rates.raw)
    ratios.batchedVsUnbatched.push(rates.batched / rates.unbatched)
    const line = modes.map((m) => `${m.key} ${rates[m.key].toFixed(0)}`).join(', ')
    console.log(
      `  round ${round}: ${line} items/s; b/a ${ratios.servedVsRaw.at(-1).toFixed(2)}, b/c ${ratios.batchedVsUnbatched.at(-1).toFixed(2)}`,
    )
  }
} finally {
  for (const mode of modes) await mode.runner.close()
}
const perSecond = Object.fromEntries(Object.entries(totals).map(([k, t]) => [k, t.items / t.seconds]))
const cpuMsPerItem = Object.fromEntries(
  Object.entries(totals).map(([k, t]) => [k, (1000 * t.cpu) / (t.items * (1 + 500 / ROUND_MS))]),
)
for (const mode of modes) {
  console.log(
    `${mode.label}: ${rate(perSecond[mode.key])}, ~${cpuMsPerItem[mode.key].toFixed(2)} CPU ms/item`,
  )
}
// Per-round ratios compare figures taken seconds apart; their median shrugs off a noisy round.
const median = (values) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]
const servedVsRaw = median(ratios.servedVsRaw)
const batchedVsUnbatched = median(ratios.batchedVsUnbatched)
console.log(
  `(b)/(a) = ${servedVsRaw.toFixed(2)}  median of per-round ratios (target ≥ ${TARGETS.servedVsRaw})`,
)
console.log(
  `(b)/(c) = ${batchedVsUnbatched.toFixed(2)}  median of per-round ratios (target ≥ ${TARGETS.batchedVsUnbatched})`,
)
console.log(
  JSON.stringify({
    bench: 'served-vs-raw',
    rawBatch: raw.batch,
    itemsPerSecond: Object.fromEntries(Object.entries(perSecond).map(([k, v]) => [k, Math.round(v)])),
    cpuMsPerItem: Object.fromEntries(Object.entries(cpuMsPerItem).map(([k, v]) => [k, Number(v.toFixed(3))])),
    servedVsRaw: Number(servedVsRaw.toFixed(3)),
    batchedVsUnbatched: Number(batchedVsUnbatched.toFixed(3)),
  }),
)
