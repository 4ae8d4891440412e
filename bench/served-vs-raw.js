// Throughput of the PP-OCR text-direction classifier, in one run and one process tree, loopback only:
// (a) raw onnxruntime-node in this process at its best batch size,
// (b) `helix serve` (a real daemon child process) with dynamic batching, concurrency 32, binary extension,
// (c) the same daemon setup with batching off.
// The three are measured in interleaved rounds (order reversed every other round) so a noisy,
// shared machine slows them alike; the verdicts are medians of per-round ratios.
import { loadavg } from 'node:os'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { closedLoop, rate } from './lib/measure.js'
import { startServedModel } from './lib/served-model.js'
import { ROOT } from './support/processes.js'
import { writeNullClsModel } from './support/tiny-model.js'

const MODEL = (await import(join(ROOT, 'dist', 'ops', 'demo-model.js'))).demoModelPath()
const ITEM_SHAPE = [3, 48, 192]
const ITEM_ELEMENTS = ITEM_SHAPE.reduce((a, b) => a * b, 1)
const CONCURRENCY = 32
const RAW_BATCHES = [1, 2, 4, 8, 16, 32]
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6)
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 2500)
const WARMUP_MS = 500
const TARGETS = { servedVsRaw: 0.9, batchedVsUnbatched: 1.5 }
// (b) and (c) run on helix's defaults: instances on the worker pool's threads (one per core), one
// intra-op thread each, the second instance opened once the first is busy, spinning off, max_batch_size 32 and max_queue_delay_ms 2 with batches cut so each
// instance has one computing and one ready (~8 at 32 clients). BENCH_INSTANCES overrides instances.
const INSTANCES = process.env.BENCH_INSTANCES ? { instances: Number(process.env.BENCH_INSTANCES) } : {}

function randomItems(n) {
  const data = new Float32Array(n * ITEM_ELEMENTS)
  for (let i = 0; i < data.length; i++) data[i] = Math.random() * 2 - 1
  return data
}

const ownCpuSeconds = () => {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1e6
}

/** (a): one session in this process, onnxruntime's defaults; the batch size with the best throughput wins. */
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
  // Two passes, the second in reverse order, so a burst of foreign load cannot crown a batch size.
  const items = new Map(RAW_BATCHES.map((b) => [b, { items: 0, seconds: 0 }]))
  for (const batches of [RAW_BATCHES, [...RAW_BATCHES].reverse()]) {
    for (const batch of batches) {
      const r = await run(batch, 1000, 200)
      items.get(batch).items += r.items
      items.get(batch).seconds += r.seconds
    }
  }
  let best = { batch: 1, itemsPerSecond: 0 }
  for (const [batch, t] of items) {
    const itemsPerSecond = t.items / t.seconds
    console.log(`  raw batch ${String(batch).padStart(2)}: ${rate(itemsPerSecond)}`)
    if (itemsPerSecond > best.itemsPerSecond) best = { batch, itemsPerSecond }
  }
  return {
    batch: best.batch,
    measure: (ms) => run(best.batch, ms, WARMUP_MS),
    cpuSeconds: ownCpuSeconds,
    close: () => session.release(),
  }
}

/** (b)/(c): a real `helix serve` over a repository holding the cls model with this config. */
const servedRunner = (config) =>
  startServedModel({
    modelPath: MODEL,
    config,
    input: 'x',
    output: 'softmax_0.tmp_0',
    item: randomItems(1),
    itemShape: ITEM_SHAPE,
    concurrency: CONCURRENCY,
  })

console.log(
  `PP-OCR cls (${MODEL.split('/').pop()}), item [${ITEM_SHAPE}] float32, concurrency ${CONCURRENCY}, load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
)
const raw = await rawRunner()
const batched = await servedRunner({ ...INSTANCES })
const unbatched = await servedRunner({ max_batch_size: 0, ...INSTANCES })
const modes = [
  { key: 'raw', label: `(a) raw onnxruntime-node, batch ${raw.batch}`, runner: raw },
  {
    key: 'batched',
    label: `(b) helix serve, dynamic batching (helix's defaults${INSTANCES.instances ? `, ${INSTANCES.instances} instances` : ''})`,
    runner: batched,
  },
  {
    key: 'unbatched',
    label: `(c) helix serve, batching off (max_batch_size 0)`,
    runner: unbatched,
  },
]
const totals = Object.fromEntries(modes.map((m) => [m.key, { items: 0, seconds: 0, cpu: 0, batches: 0 }]))
const ratios = { servedVsRaw: [], batchedVsUnbatched: [] }
const loads = []
try {
  for (let round = 1; round <= ROUNDS; round++) {
    const rates = {}
    const order = round % 2 === 1 ? modes : [...modes].reverse()
    for (const mode of order) {
      const cpuBefore = mode.runner.cpuSeconds()
      const r = await mode.runner.measure(ROUND_MS)
      // Includes the warm-up of every mode; the per-item figure scales it out.
      totals[mode.key].cpu += mode.runner.cpuSeconds() - cpuBefore
      totals[mode.key].items += r.items
      totals[mode.key].seconds += r.seconds
      if (r.meanBatch) totals[mode.key].batches += r.items / r.meanBatch
      rates[mode.key] = r.itemsPerSecond
    }
    loads.push(loadavg()[0])
    ratios.servedVsRaw.push(rates.batched / rates.raw)
    ratios.batchedVsUnbatched.push(rates.batched / rates.unbatched)
    const line = modes.map((m) => `${m.key} ${rates[m.key].toFixed(0)}`).join(', ')
    console.log(
      `  round ${round}: ${line} items/s; b/a ${ratios.servedVsRaw.at(-1).toFixed(2)}, b/c ${ratios.batchedVsUnbatched.at(-1).toFixed(2)}; load ${loads.at(-1).toFixed(1)}`,
    )
  }
} finally {
  for (const mode of modes) await mode.runner.close()
}
const median = (values) => {
  const sorted = [...values].sort((x, y) => x - y)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
const perSecond = Object.fromEntries(Object.entries(totals).map(([k, t]) => [k, t.items / t.seconds]))
const cpuMsPerItem = Object.fromEntries(
  Object.entries(totals).map(([k, t]) => [k, (1000 * t.cpu) / (t.items * (1 + WARMUP_MS / ROUND_MS))]),
)
const meanBatch = Object.fromEntries(
  Object.entries(totals).map(([k, t]) => [
    k,
    k === 'raw' ? raw.batch : t.batches ? t.items / t.batches : undefined,
  ]),
)
for (const mode of modes) {
  console.log(
    `${mode.label}: ${rate(perSecond[mode.key])}, ~${cpuMsPerItem[mode.key].toFixed(2)} CPU ms/item, mean batch ${meanBatch[mode.key]?.toFixed(1)}`,
  )
}
// Per-round ratios compare figures taken seconds apart; their median shrugs off a noisy round.
const servedVsRaw = median(ratios.servedVsRaw)
const batchedVsUnbatched = median(ratios.batchedVsUnbatched)
const verdict = (value, target) => `target ≥ ${target}: ${value >= target ? 'meets' : 'misses'}`
console.log(
  `(b)/(a) = ${servedVsRaw.toFixed(2)}  median of per-round ratios (${verdict(servedVsRaw, TARGETS.servedVsRaw)})`,
)
console.log(
  `(b)/(c) = ${batchedVsUnbatched.toFixed(2)}  median of per-round ratios (${verdict(batchedVsUnbatched, TARGETS.batchedVsUnbatched)})`,
)
console.log(
  `CPU per item, (a)/(b): ${(cpuMsPerItem.raw / cpuMsPerItem.batched).toFixed(2)} — the ceiling of (b)/(a) when both are CPU-bound; load average during the rounds ${median(loads).toFixed(1)} (median)`,
)
const ceilingBatch = Math.max(1, Math.round(meanBatch.batched ?? 1))
const ceilings = await measureCeilings(cpuMsPerItem.raw, cpuMsPerItem.unbatched, ceilingBatch)
const ms = (v) => v.toFixed(3)
console.log(`What this machine allows, measured in this run (CPU ms per item; both modes CPU-bound):
  serving one item beyond the model (the same daemon and load on a model with the cls input that does
  no math): ${ms(ceilings.servingCpuMs.batched)} batched (${ceilings.nullItemsPerSecond.batched.toFixed(0)} items/s), ${ms(ceilings.servingCpuMs.unbatched)} unbatched (${ceilings.nullItemsPerSecond.unbatched.toFixed(0)} items/s)
  onnxruntime in one helix instance (1 thread, no spinning): ${ms(ceilings.singleCpuMs.batch1)} at batch 1, ${ms(ceilings.singleCpuMs.batched)} at batch ${ceilingBatch}, (b)'s mean batch (${ceilings.batchGain.toFixed(2)}× the items/s)
  (b)/(a) ≤ raw / (raw + serving) = ${ceilings.servedVsRaw.toFixed(2)}
  (b)/(c) ≤ (c)'s CPU per item / (onnxruntime at (b)'s batch + serving) = ${ceilings.batchedVsUnbatched.toFixed(2)}; even if serving a batched item cost nothing, ${ceilings.batchedVsUnbatchedBound.toFixed(2)}`)
console.log(
  JSON.stringify({
    bench: 'served-vs-raw',
    rawBatch: raw.batch,
    servedConfig: { batched: { ...INSTANCES }, unbatched: { max_batch_size: 0, ...INSTANCES } },
    itemsPerSecond: Object.fromEntries(Object.entries(perSecond).map(([k, v]) => [k, Math.round(v)])),
    cpuMsPerItem: Object.fromEntries(Object.entries(cpuMsPerItem).map(([k, v]) => [k, Number(v.toFixed(3))])),
    meanBatch: Object.fromEntries(Object.entries(meanBatch).map(([k, v]) => [k, v && Number(v.toFixed(1))])),
    servedVsRaw: Number(servedVsRaw.toFixed(3)),
    batchedVsUnbatched: Number(batchedVsUnbatched.toFixed(3)),
    servedVsRawRounds: ratios.servedVsRaw.map((r) => Number(r.toFixed(2))),
    batchedVsUnbatchedRounds: ratios.batchedVsUnbatched.map((r) => Number(r.toFixed(2))),
    loadAverage: Number(median(loads).toFixed(1)),
    ceilings: {
      servingCpuMsPerItem: {
        batched: Number(ceilings.servingCpuMs.batched.toFixed(3)),
        unbatched: Number(ceilings.servingCpuMs.unbatched.toFixed(3)),
      },
      singleThreadCpuMsPerItem: {
        batch1: Number(ceilings.singleCpuMs.batch1.toFixed(3)),
        [`batch${ceilingBatch}`]: Number(ceilings.singleCpuMs.batched.toFixed(3)),
      },
      servedVsRaw: Number(ceilings.servedVsRaw.toFixed(2)),
      batchedVsUnbatched: Number(ceilings.batchedVsUnbatched.toFixed(2)),
      batchedVsUnbatchedBound: Number(ceilings.batchedVsUnbatchedBound.toFixed(2)),
    },
  }),
)

/**
 * What this CPU allows at best, measured after the rounds. (b)/(a): the daemon and the load client
 * share the cores with onnxruntime, so served work per item is at least raw work + serving work;
 * serving work is measured on a model with the cls input that does almost no math, with (b)'s
 * config and with batching off. (b)/(c): batching can at best bring (c)'s CPU per item down to
 * onnxruntime's own at (b)'s batch size (one helix instance) plus serving a batched item.
 */
async function measureCeilings(rawCpuMs, unbatchedCpuMs, batchSize) {
  const nullModel = await writeNullClsModel()
  const servingCpuMs = {}
  const nullItemsPerSecond = {}
  for (const [key, config] of [
    ['batched', { ...INSTANCES }],
    ['unbatched', { max_batch_size: 0, ...INSTANCES }],
  ]) {
    const served = await startServedModel({
      modelPath: nullModel,
      config,
      input: 'x',
      output: 'y',
      item: randomItems(1),
      itemShape: ITEM_SHAPE,
      concurrency: CONCURRENCY,
    })
    try {
      await served.measure(ROUND_MS, WARMUP_MS)
      const before = served.cpuSeconds()
      const r = await served.measure(2 * ROUND_MS, 0)
      servingCpuMs[key] = (1000 * (served.cpuSeconds() - before)) / r.items
      nullItemsPerSecond[key] = r.itemsPerSecond
    } finally {
      await served.close()
    }
  }
  const session = await ort.InferenceSession.create(MODEL, {
    intraOpNumThreads: 1,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  })
  const single = {}
  const cpuMs = {}
  try {
    for (const [key, batch] of [
      ['batch1', 1],
      ['batched', batchSize],
    ]) {
      const tensor = new ort.Tensor('float32', randomItems(batch), [batch, ...ITEM_SHAPE])
      const before = ownCpuSeconds()
      const r = await closedLoop(
        async () => {
          await session.run({ x: tensor })
          return batch
        },
        { durationMs: ROUND_MS, warmupMs: WARMUP_MS },
      )
      single[key] = r.itemsPerSecond
      cpuMs[key] = ((ownCpuSeconds() - before) * 1000) / (r.items * (1 + WARMUP_MS / ROUND_MS))
    }
  } finally {
    await session.release()
  }
  return {
    servingCpuMs,
    nullItemsPerSecond,
    servedVsRaw: rawCpuMs / (rawCpuMs + servingCpuMs.batched),
    single,
    singleCpuMs: cpuMs,
    batchGain: single.batched / single.batch1,
    // Batching can at best bring (c)'s CPU per item down to onnxruntime's own at (b)'s batch size
    // plus what serving a batched item costs; both CPU-bound, that ratio bounds (b)/(c).
    batchedVsUnbatched: unbatchedCpuMs / (cpuMs.batched + servingCpuMs.batched),
    batchedVsUnbatchedBound: unbatchedCpuMs / cpuMs.batched,
  }
}
