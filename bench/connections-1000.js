// 1000 concurrent connections against a small model through `helix serve` for 30 s (product brief:
// no errors, P95 < 100 ms, ≥ 1000 req/s), with a bare Fastify echo server under the same load as the
// reference measured in the same run. The load is 1000 users, each on its own keep-alive connection,
// together offering 1100 req/s as a Poisson stream (open loop, latency from the intended send time):
// 10 % above the brief's 1000, so the random arrivals of a 30 s run cannot fall just short of it.
// A closed loop of 1000 clients would instead measure saturation: by Little's law its latency is
// 1000 / throughput, so it is reported too, as the capacity at that concurrency.
import { join } from 'node:path'
import { serveModels, warmUp } from './support/helix-serve.js'
import { helixBench, ROOT, startListening } from './support/processes.js'
import { machine, writeReadmeSection } from './support/readme-section.js'
import { writeTinyModel } from './support/tiny-model.js'

const CONNECTIONS = 1000
const SECONDS = Number(process.env.BENCH_SECONDS ?? 30)
const RATE = Number(process.env.BENCH_RATE ?? 1100)
const TARGETS = { errors: 0, p95Ms: 100, throughput: 1000 }

const model = await writeTinyModel()
const echo = await startListening(join(ROOT, 'bench', 'support', 'echo-server.js'))
const helix = await serveModels({ tiny: model })
const common = ['--model', 'tiny', '--warmup', '2s', '--timeout', '30s']
const open = (url, seconds) => [
  '--url',
  url,
  ...common,
  '--rate',
  String(RATE),
  '--connections',
  String(CONNECTIONS),
  '-d',
  `${seconds}s`,
]
const closed = (url, seconds) => ['--url', url, ...common, '-c', String(CONNECTIONS), '-d', `${seconds}s`]
const line = (name, s) =>
  console.log(`  ${name}: ${s.throughput.toFixed(0)} req/s, p95 ${s.latency.p95} ms, errors ${s.errorCount}`)
const limit = { timeoutMs: (SECONDS + 120) * 1000 }
let reference
let step
let referenceClosed
let closedStep
try {
  await warmUp(helix.url, 'tiny', 3, helix.keyArgs)
  reference = (await helixBench(open(echo.url, Math.min(SECONDS, 10)), limit)).steps[0]
  line(`echo  rate=${RATE}`, reference)
  step = (await helixBench([...open(helix.url, SECONDS), ...helix.keyArgs], limit)).steps[0]
  line(`helix rate=${RATE}`, step)
  referenceClosed = (await helixBench(closed(echo.url, Math.min(SECONDS, 10)), limit)).steps[0]
  line('echo  c=1000', referenceClosed)
  closedStep = (await helixBench([...closed(helix.url, Math.min(SECONDS, 10)), ...helix.keyArgs], limit))
    .steps[0]
  line('helix c=1000', closedStep)
} finally {
  await helix.stop()
  await echo.stop()
}
const ok =
  step.errorCount === TARGETS.errors &&
  step.latency.p95 < TARGETS.p95Ms &&
  step.throughput >= TARGETS.throughput
const errors =
  Object.entries(step.errors)
    .map(([k, n]) => `${k}: ${n}`)
    .join(', ') || 'none'
writeReadmeSection(
  'connections-1000',
  `## 1000 concurrent connections against a small model

\`node bench/connections-1000.js\` — ${CONNECTIONS} users, each on its own keep-alive connection, together offering
${RATE} req/s as Poisson arrivals (helix bench open loop, latency from the intended send time) to the tiny model
(y = 2x, FP32 [1, 4]) on \`helix serve\` for ${SECONDS} s after a 2 s warm-up; the bare Fastify echo server under the same
load is the reference. The closed-loop rows (${CONNECTIONS} clients sending back to back) show capacity at that
concurrency; their latency is ${CONNECTIONS} / throughput by Little's law. Measured ${machine()} on a shared 2-core machine.

| server | load | throughput (req/s) | p50 ms | p95 ms | p99 ms | errors |
|---|---|---|---|---|---|---|
| bare Fastify echo | rate=${RATE}, ${Math.min(SECONDS, 10)} s | ${reference.throughput.toFixed(0)} | ${reference.latency.p50} | ${reference.latency.p95} | ${reference.latency.p99} | ${reference.errorCount} |
| helix serve | rate=${RATE}, ${SECONDS} s | ${step.throughput.toFixed(0)} | ${step.latency.p50} | ${step.latency.p95} | ${step.latency.p99} | ${step.errorCount} |
| bare Fastify echo | c=${CONNECTIONS}, ${Math.min(SECONDS, 10)} s | ${referenceClosed.throughput.toFixed(0)} | ${referenceClosed.latency.p50} | ${referenceClosed.latency.p95} | ${referenceClosed.latency.p99} | ${referenceClosed.errorCount} |
| helix serve | c=${CONNECTIONS}, ${Math.min(SECONDS, 10)} s | ${closedStep.throughput.toFixed(0)} | ${closedStep.latency.p50} | ${closedStep.latency.p95} | ${closedStep.latency.p99} | ${closedStep.errorCount} |

Open loop: helix / echo p95 = ${(step.latency.p95 / reference.latency.p95).toFixed(2)}×; closed loop: helix / echo throughput =
${(closedStep.throughput / referenceClosed.throughput).toFixed(2)}. Errors by kind (open loop): ${errors}. Server queue time mean
${step.server?.queue?.mean ?? '–'} ms (p99 ${step.server?.queue?.p99 ?? '–'}), compute ${step.server?.compute?.mean ?? '–'} ms. Product brief (0 errors,
P95 < ${TARGETS.p95Ms} ms, ≥ ${TARGETS.throughput} req/s): ${ok ? 'meets all three' : 'misses'}.`,
)
console.log(ok ? 'meets the product brief' : 'misses the product brief')
// A missed target is a finding written to bench/README.md, not a failure of the script (as in served-vs-raw).
