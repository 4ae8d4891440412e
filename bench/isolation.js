// `npm run bench -- isolation`: what `isolation: process` costs. PP-OCR cls served by two `helix serve`
// daemons that differ only in the model's config.yaml: `isolation: thread` (the default: sessions in the
// daemon's worker threads, tensors moved without copies) and `isolation: process` (each instance in a
// worker process of its own, tensors copied through a pipe both ways). Single-item REST binary requests,
// helix's batching, rounds interleaved so both see the same machine; the ratio process / thread is the
// figure, with CPU per item (daemon + its worker processes + the load generator).
import { execFileSync } from 'node:child_process'
import { availableParallelism, loadavg } from 'node:os'
import { join } from 'node:path'
import { startServedModel } from './lib/served-model.js'
import { median, ROOT } from './support/processes.js'
import { machine, writeReadmeSection } from './support/readme-section.js'

const MODEL = (await import(join(ROOT, 'dist', 'ops', 'demo-model.js'))).demoModelPath()
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4)
const CONCURRENCY = 32
const ITEM_SHAPE = [3, 48, 192]

/** CPU seconds of a process's children (the worker processes), from /proc; 0 where there are none. */
function childrenCpuSeconds(pid) {
  let children = ''
  try {
    children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
  } catch {
    return 0
  }
  let seconds = 0
  for (const child of children.split('\n').filter(Boolean)) {
    try {
      const stat = execFileSync('cat', [`/proc/${child}/stat`], { encoding: 'utf8' })
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      seconds += (Number(fields[11]) + Number(fields[12])) / 100
    } catch {
      // The child ended meanwhile.
    }
  }
  return seconds
}

const item = new Float32Array(ITEM_SHAPE.reduce((a, b) => a * b)).map((_, i) => Math.sin(i) * 0.5)
const config = (isolation) => ({ device: 'cpu', isolation, max_batch_size: 32, max_queue_delay_ms: 2 })
const modes = {}
for (const isolation of ['thread', 'process'])
  modes[isolation] = await startServedModel({
    modelPath: MODEL,
    config: config(isolation),
    input: 'x',
    output: 'softmax_0.tmp_0',
    item,
    itemShape: ITEM_SHAPE,
    concurrency: CONCURRENCY,
  })

const rows = { thread: [], process: [] }
try {
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? ['thread', 'process'] : ['process', 'thread']
    for (const mode of order) {
      const served = modes[mode]
      const cpuBefore = served.cpuSeconds() + childrenCpuSeconds(served.pid)
      const r = await served.measure(SECONDS * 1000, 1000)
      const cpu = served.cpuSeconds() + childrenCpuSeconds(served.pid) - cpuBefore
      rows[mode].push({
        rate: r.itemsPerSecond,
        cpuMsPerItem: (cpu * 1000) / r.items,
        meanBatch: r.meanBatch,
      })
      console.log(
        `round ${round + 1} ${mode}: ${r.itemsPerSecond.toFixed(0)} items/s, ${((cpu * 1000) / r.items).toFixed(3)} CPU ms/item, mean batch ${r.meanBatch?.toFixed?.(1) ?? '?'}`,
      )
    }
  }
} finally {
  for (const served of Object.values(modes)) await served.close()
}

const ratios = rows.process.map((p, i) => p.rate / rows.thread[i].rate)
const cpuRatios = rows.process.map((p, i) => p.cpuMsPerItem / rows.thread[i].cpuMsPerItem)
const med = (mode, key) => median(rows[mode].map((r) => r[key]))
const load = loadavg()[0].toFixed(2)
console.log(
  `process / thread = ${median(ratios).toFixed(2)} (rounds: ${ratios.map((r) => r.toFixed(2)).join(', ')})`,
)
console.log(
  `CPU per item, process / thread = ${median(cpuRatios).toFixed(2)} (rounds: ${cpuRatios.map((r) => r.toFixed(2)).join(', ')})`,
)

writeReadmeSection(
  'isolation',
  `## isolation: process vs thread (PP-OCR cls)

\`npm run build && npm run bench -- isolation\` (or \`node bench/isolation.js\`; \`BENCH_ROUNDS\`, \`BENCH_SECONDS\`).
Two \`helix serve\` daemons (no auth) serving \`ch_ppocr_mobile_v2.0_cls_infer.onnx\` with the same config.yaml
but for \`isolation\` (\`device: cpu\`, \`max_batch_size: 32\`, \`max_queue_delay_ms: 2\`, default instances); ${CONCURRENCY}
keep-alive connections each sending one 110 KB item through the binary tensor extension, ${SECONDS} s per
round after 1 s of warm-up, ${ROUNDS} rounds alternating which goes first. CPU counts the daemon, its worker
processes and the load generator. Measured ${machine()}, ${availableParallelism()} cores, load ${load} at the end.

| isolation | items/s (median) | CPU ms/item | mean batch |
|---|---|---|---|
| thread (default) | ${med('thread', 'rate').toFixed(0)} | ${med('thread', 'cpuMsPerItem').toFixed(3)} | ${med('thread', 'meanBatch')?.toFixed?.(1) ?? '?'} |
| process | ${med('process', 'rate').toFixed(0)} | ${med('process', 'cpuMsPerItem').toFixed(3)} | ${med('process', 'meanBatch')?.toFixed?.(1) ?? '?'} |

Per-round process / thread: ${ratios.map((r) => r.toFixed(2)).join(', ')}. **process / thread = ${median(ratios).toFixed(2)}** (median):
what containing a native crash in one instance costs in throughput on this model. CPU per item, process / thread:
${cpuRatios.map((r) => r.toFixed(2)).join(', ')} (median **${median(cpuRatios).toFixed(2)}**; steadier than throughput on a shared machine).
`,
)
