// A tiny model through the whole helix stack (HTTP, API-key auth, rate limiting, KServe codec,
// scheduler, onnxruntime, metrics, logging) vs a bare Fastify echo server answering the same request, both at 100 connections and
// measured by helix bench in the same run. Targets: ≥ 0.5× the echo server's throughput, p95 < 50 ms.
import { join } from 'node:path'
import { serveModels, warmUp } from './support/helix-serve.js'
import { helixBench, median, ROOT, startListening } from './support/processes.js'
import { machine, writeReadmeSection } from './support/readme-section.js'
import { writeTinyModel } from './support/tiny-model.js'

const CONNECTIONS = 100
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const TARGETS = { ratio: 0.5, p95Ms: 50 }

const model = await writeTinyModel()
const echo = await startListening(join(ROOT, 'bench', 'support', 'echo-server.js'))
const helix = await serveModels({ tiny: model })
const args = (url, keyArgs = []) => [
  ...keyArgs,
  '--url',
  url,
  '--model',
  'tiny',
  '-c',
  String(CONNECTIONS),
  '-d',
  `${SECONDS}s`,
  '--warmup',
  '1s',
]
const rounds = []
try {
  await warmUp(helix.url, 'tiny', 3, helix.keyArgs)
  for (let i = 0; i < ROUNDS; i++) {
    const echoStep = (await helixBench(args(echo.url))).steps[0]
    const helixStep = (await helixBench(args(helix.url, helix.keyArgs))).steps[0]
    rounds.push({ echo: echoStep, helix: helixStep, ratio: helixStep.throughput / echoStep.throughput })
    console.log(
      `  round ${i + 1}: echo ${echoStep.throughput.toFixed(0)} req/s, helix ${helixStep.throughput.toFixed(0)} req/s (p95 ${helixStep.latency.p95} ms, errors ${helixStep.errorCount})`,
    )
  }
} finally {
  await helix.stop()
  await echo.stop()
}
const ratio = median(rounds.map((r) => r.ratio))
const p95 = median(rounds.map((r) => r.helix.latency.p95))
const errors = rounds.reduce((a, r) => a + r.helix.errorCount, 0)
const ok = ratio >= TARGETS.ratio && p95 < TARGETS.p95Ms && errors === 0
console.log(
  `helix / echo = ${ratio.toFixed(2)} (target ≥ ${TARGETS.ratio}), p95 ${p95} ms (target < ${TARGETS.p95Ms})`,
)
writeReadmeSection(
  'full-stack',
  `## Tiny model through the full stack vs a bare Fastify echo server

\`node bench/full-stack-vs-echo.js\` — y = 2x on FP32 [1, 4] through \`helix serve\` (API-key auth against the
embedded PostgreSQL, rate limiting, KServe JSON, dynamic batching, onnxruntime CPU, metrics, usage and request logs) vs a bare Fastify server answering the same request; helix bench,
${CONNECTIONS} connections, ${SECONDS} s after a 1 s warm-up, ${ROUNDS} rounds, medians. Measured ${machine()} on a shared 2-core machine.

| server | throughput (req/s) | p50 ms | p95 ms | p99 ms | errors |
|---|---|---|---|---|---|
| bare Fastify echo | ${median(rounds.map((r) => r.echo.throughput)).toFixed(0)} | ${median(rounds.map((r) => r.echo.latency.p50))} | ${median(rounds.map((r) => r.echo.latency.p95))} | ${median(rounds.map((r) => r.echo.latency.p99))} | ${rounds.reduce((a, r) => a + r.echo.errorCount, 0)} |
| helix serve (tiny model) | ${median(rounds.map((r) => r.helix.throughput)).toFixed(0)} | ${median(rounds.map((r) => r.helix.latency.p50))} | ${p95} | ${median(rounds.map((r) => r.helix.latency.p99))} | ${errors} |

**helix / echo = ${ratio.toFixed(2)}** (target ≥ ${TARGETS.ratio}), **p95 ${p95} ms** (target < ${TARGETS.p95Ms}): ${ok ? 'meets both' : 'misses'}.`,
)
// A missed target is a finding written to bench/README.md, not a failure of the script (as in served-vs-raw).
