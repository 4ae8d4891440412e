// A repository of many small models (issue 12): `helix serve` over 500 generated MLPs, as a real child
// process on loopback. For `models.load: all`: time until /v2/health/ready answers 200, resident
// memory and threads of the daemon, the slowest /v2/health/live answer while loading; for
// `models.load: lazy`: the same at start, then the latency of each model's first request (which
// loads it) against its second. The reference, measured in the same run, is the same daemon over a
// one-model repository.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { startDaemon } from './lib/daemon.js'
import { machine, writeReadmeSection } from './support/readme-section.js'
import { mlpModel } from './support/tiny-model.js'

const MODELS = Number(process.env.BENCH_MODELS ?? 500)
const READY_TIMEOUT_S = Number(process.env.BENCH_READY_TIMEOUT_S ?? 180)
const LAZY_FIRST = 20
const TARGETS = { readySeconds: 60, rssMiB: 2048 }
const MODES = (process.env.BENCH_MODES ?? 'all,lazy').split(',')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const median = (values) => {
  const s = [...values].sort((a, b) => a - b)
  return s.length ? s[Math.floor((s.length - 1) / 2)] : Number.NaN
}
const fmt = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(1)} ms`)

/** VmRSS (MiB) and thread count of a process, from /proc (Linux). */
async function processMemory(pid) {
  try {
    const { readFile } = await import('node:fs/promises')
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN) / 1024
    const threads = Number(/Threads:\s+(\d+)/.exec(status)?.[1] ?? Number.NaN)
    return { rssMiB: rss, threads }
  } catch {
    return { rssMiB: Number.NaN, threads: Number.NaN }
  }
}

/** A helix directory whose repository holds `count` distinct small MLPs m0000…, and helix.yaml. */
async function repository(count, yaml) {
  const dir = await mkdtemp(join(tmpdir(), 'helix-bench-many-'))
  await writeFile(join(dir, 'helix.yaml'), yaml)
  for (let i = 0; i < count; i++) {
    const version = join(dir, 'models', name(i), '1')
    await mkdir(version, { recursive: true })
    await writeFile(join(version, 'model.onnx'), mlpModel(i))
  }
  return dir
}

const name = (i) => `m${String(i).padStart(4, '0')}`

const body = JSON.stringify({
  inputs: [
    { name: 'x', datatype: 'FP32', shape: [1, 16], data: Array.from({ length: 16 }, (_, i) => i / 16) },
  ],
})

async function infer(url, model) {
  const started = performance.now()
  const response = await fetch(`${url}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  })
  const text = await response.text()
  if (response.status !== 200) throw new Error(`${model}: ${response.status} ${text}`)
  return performance.now() - started
}

/** Timed GET with a 10 s bound (the issue's daemon did not answer /v2/health/live within 10 s). */
async function timedGet(url) {
  const started = performance.now()
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(10_000) })
    await response.arrayBuffer()
    return { status: response.status, ms: performance.now() - started }
  } catch {
    return { status: 0, ms: performance.now() - started }
  }
}

async function readyCount(url) {
  const response = await fetch(`${url}/v2/repository/index`, {
    method: 'POST',
    body: '{}',
    headers: { 'content-type': 'application/json' },
  }).catch(() => undefined)
  if (response?.status !== 200) return { ready: Number.NaN, unavailable: Number.NaN }
  const rows = await response.json()
  return {
    ready: rows.filter((r) => r.state === 'READY').length,
    unavailable: rows.filter((r) => r.state === 'UNAVAILABLE').length,
  }
}

/**
 * Starts the daemon over `count` models with `models.load: mode` and measures the start: seconds
 * from spawn to ready, the slowest live probe meanwhile, peak and final RSS and threads.
 */
async function startAndMeasure(count, mode) {
  const dir = await repository(count, `models:\n  device: cpu\n  load: ${mode}\n`)
  const spawned = performance.now()
  const daemon = await startDaemon(dir, { timeoutMs: 120_000 })
  let peak = { rssMiB: 0, threads: 0 }
  let slowestLive = 0
  let liveFailures = 0
  let readySeconds = Number.NaN
  const deadline = spawned + READY_TIMEOUT_S * 1000
  while (performance.now() < deadline) {
    const live = await timedGet(`${daemon.url}/v2/health/live`)
    slowestLive = Math.max(slowestLive, live.ms)
    if (live.status !== 200) liveFailures++
    const memory = await processMemory(daemon.pid)
    peak = { rssMiB: Math.max(peak.rssMiB, memory.rssMiB), threads: Math.max(peak.threads, memory.threads) }
    if (daemon.child.exitCode !== null || daemon.child.signalCode !== null) break
    const ready = await timedGet(`${daemon.url}/v2/health/ready`)
    if (ready.status === 200) {
      readySeconds = (performance.now() - spawned) / 1000
      break
    }
    await sleep(200)
  }
  const atReady = await processMemory(daemon.pid)
  const counts = await readyCount(daemon.url)
  return { dir, daemon, readySeconds, peak, atReady, slowestLive, liveFailures, counts }
}

async function stopAndClean(run) {
  await run.daemon.stop()
  await rm(run.dir, { recursive: true, force: true })
}

console.log(
  `many models: ${MODELS} generated MLPs (x FP32 [1,16] → 32 → 4), load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
)

const reference = await startAndMeasure(1, 'all')
const referenceInfer = median(await Promise.all([0, 1, 2].map(() => infer(reference.daemon.url, name(0)))))
await stopAndClean(reference)
console.log(
  `  reference (1 model, all): ready in ${reference.readySeconds.toFixed(2)} s, RSS ${reference.atReady.rssMiB.toFixed(0)} MiB, ${reference.atReady.threads} threads`,
)

const results = {}
if (MODES.includes('all')) {
  const run = await startAndMeasure(MODELS, 'all')
  const samples = []
  if (Number.isFinite(run.readySeconds)) {
    for (let i = 0; i < 20; i++) samples.push(await infer(run.daemon.url, name((i * 37) % MODELS)))
  }
  const afterRequests = await processMemory(run.daemon.pid)
  results.all = { ...run, inferMs: median(samples), afterRequests }
  console.log(
    `  all: ${Number.isFinite(run.readySeconds) ? `ready in ${run.readySeconds.toFixed(1)} s` : `not ready after ${READY_TIMEOUT_S} s`} (${run.counts.ready} READY, ${run.counts.unavailable} UNAVAILABLE), RSS ${run.atReady.rssMiB.toFixed(0)} MiB (peak ${run.peak.rssMiB.toFixed(0)}), threads ${run.atReady.threads} (peak ${run.peak.threads}), slowest live ${fmt(run.slowestLive)} (${run.liveFailures} failed), warm infer ${fmt(results.all.inferMs)}`,
  )
  await stopAndClean(run)
}
if (MODES.includes('lazy')) {
  const run = await startAndMeasure(MODELS, 'lazy')
  const first = []
  const second = []
  for (let i = 0; i < LAZY_FIRST; i++) {
    const model = name((i * 37) % MODELS)
    first.push(await infer(run.daemon.url, model))
    second.push(await infer(run.daemon.url, model))
  }
  // Concurrent first requests: 10 clients on each of 10 models not loaded yet share one load per model.
  const started = performance.now()
  const burst = []
  for (let m = 0; m < 10; m++)
    for (let c = 0; c < 10; c++) burst.push(infer(run.daemon.url, name(MODELS - 1 - m)))
  await Promise.all(burst)
  const burstMs = performance.now() - started
  const afterRequests = await processMemory(run.daemon.pid)
  const counts = await readyCount(run.daemon.url)
  results.lazy = {
    ...run,
    firstMs: median(first),
    firstMax: Math.max(...first),
    secondMs: median(second),
    burstMs,
    afterRequests,
    loaded: counts.ready,
  }
  console.log(
    `  lazy: ready in ${run.readySeconds.toFixed(2)} s, RSS ${run.atReady.rssMiB.toFixed(0)} MiB, first request ${fmt(results.lazy.firstMs)} median (max ${fmt(results.lazy.firstMax)}), second ${fmt(results.lazy.secondMs)}, 100 concurrent first requests on 10 models ${fmt(burstMs)}, RSS after ${afterRequests.rssMiB.toFixed(0)} MiB with ${counts.ready} loaded`,
  )
  await stopAndClean(run)
}

const rows = []
if (results.all) {
  const a = results.all
  rows.push(
    `| \`all\`, ${MODELS} models | ${Number.isFinite(a.readySeconds) ? `${a.readySeconds.toFixed(1)} s` : `not ready after ${READY_TIMEOUT_S} s`} (${a.counts.ready} READY) | ${a.atReady.rssMiB.toFixed(0)} (peak ${a.peak.rssMiB.toFixed(0)}) | ${a.atReady.threads} (peak ${a.peak.threads}) | ${fmt(a.slowestLive)} | warm: ${fmt(a.inferMs)} |`,
  )
}
if (results.lazy) {
  const l = results.lazy
  rows.push(
    `| \`lazy\`, ${MODELS} models | ${l.readySeconds.toFixed(2)} s | ${l.atReady.rssMiB.toFixed(0)} (${l.afterRequests.rssMiB.toFixed(0)} with ${l.loaded} loaded) | ${l.atReady.threads} | ${fmt(l.slowestLive)} | first: ${fmt(l.firstMs)} median, ${fmt(l.firstMax)} max; second: ${fmt(l.secondMs)}; 100 concurrent first requests on 10 models: ${fmt(l.burstMs)} |`,
  )
}
const a = results.all
const verdict = a
  ? `**\`all\`: ready in ${Number.isFinite(a.readySeconds) ? `${a.readySeconds.toFixed(1)} s` : `> ${READY_TIMEOUT_S} s`}** (target < ${TARGETS.readySeconds} s: ${a.readySeconds < TARGETS.readySeconds ? 'met' : '**missed**'}), **${a.atReady.rssMiB.toFixed(0)} MiB** resident (target < ${TARGETS.rssMiB} MiB: ${a.atReady.rssMiB < TARGETS.rssMiB ? 'met' : '**missed**'}).`
  : ''

writeReadmeSection(
  'many-models',
  `## A repository of many small models (issue 12)

\`npm run build && npm run bench -- many-models\` (or \`node bench/many-models.js\`; \`BENCH_MODELS\`,
\`BENCH_MODES=all,lazy\`, \`BENCH_READY_TIMEOUT_S\` tune it). ${MODELS} generated MLPs (x FP32 [1,16] →
MatMul 16×32 → Relu → MatMul 32×4, distinct weights, ~2.7 KB each) in one repository, \`helix serve\`
as a real child process (\`--no-auth\`, \`device: cpu\`), probed every 200 ms: \`/v2/health/live\`
(bounded at 10 s), RSS and threads from /proc, \`/v2/health/ready\`. Reference in the same run: the same
daemon over one of those models, ready in ${reference.readySeconds.toFixed(2)} s at ${reference.atReady.rssMiB.toFixed(0)} MiB and ${reference.atReady.threads} threads,
warm request ${fmt(referenceInfer)}. Measured ${machine()} on a shared 2-core machine, load average ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')} at the end.

| \`models.load\` | time to ready (from spawn) | RSS MiB | threads | slowest live probe | requests (JSON, one item) |
|---|---|---|---|---|---|
${rows.join('\n')}

${verdict}
`,
)
