// The production shape under load and faults (issue: reliability, proven): the generated nginx (TLS)
// in front of two `helix serve` replicas sharing the embedded PostgreSQL and a real redis-server,
// with authentication and rate limiting on. Phases, each counting every request (helix bench, open
// loop, Poisson arrivals, latency from the intended send time):
//   1. load: 1000 connections at 1100 req/s for BENCH_SECONDS (60) — target 0 errors, p95 < 100 ms;
//   2. SIGKILL of one replica under load — only its in-flight requests may fail, then 0;
//   3. SIGTERM of one replica under load and its restart (a rolling restart) — 0 errors;
//   4. stress ramp, doubling the rate until the first error: the breaking point, then recovery
//      (the normal rate without errors, memory back near its baseline).
// The reference measured in the same run is one replica loaded directly (no nginx, no TLS) at the
// same rate: the cost of the proxy hop.
import { HELIX_BIN, helixBench } from './support/processes.js'
import { machine, writeReadmeSection } from './support/readme-section.js'
import { importTestHelper } from './support/test-helper.js'
import { writeTinyModel } from './support/tiny-model.js'

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60)
const RATE = Number(process.env.BENCH_RATE ?? 1100)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 1000)
const FAULT_SECONDS = Number(process.env.BENCH_FAULT_SECONDS ?? 20)
const RAMP_SECONDS = Number(process.env.BENCH_RAMP_SECONDS ?? 8)
const TARGETS = { errors: 0, p95Ms: 100, throughput: 1000 }
const MiB = 2 ** 20

const { startReplicaCluster } = await importTestHelper('replicas')
const cluster = await startReplicaCluster({ helixBin: HELIX_BIN, models: { tiny: await writeTinyModel() } })
const tls = ['--cacert', cluster.caFile]
const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000))

/** One open-loop step through `url`; `during` runs while it loads. */
async function load(url, rate, seconds, { during, timeout = '10s', connections = CONNECTIONS } = {}) {
  const args = [
    '--url',
    url,
    ...(url.startsWith('https') ? tls : []),
    '--key',
    cluster.key,
    '--model',
    'tiny',
    '--rate',
    String(rate),
    '--connections',
    String(connections),
    '-d',
    `${seconds}s`,
    '--warmup',
    '1s',
    '--timeout',
    timeout,
  ]
  const [result] = await Promise.all([helixBench(args, { timeoutMs: (seconds + 120) * 1000 }), during?.()])
  const step = result.steps[0]
  console.log(
    `  ${url} rate=${rate} ${seconds}s: ${step.throughput.toFixed(0)} req/s, p95 ${step.latency.p95} ms, errors ${JSON.stringify(step.errors)}`,
  )
  return step
}

const errorsText = (step) =>
  Object.entries(step.errors)
    .map(([k, n]) => `${k}: ${n}`)
    .join(', ') || 'none'

let steady
let direct
let killed
let rolling
const ramp = []
let recovery
let rssBefore
let rssAfter
try {
  await load(cluster.url, 200, 3, { connections: 64 })
  console.log('1. load')
  direct = await load(`http://127.0.0.1:${cluster.replicas[0].port}`, RATE, Math.min(SECONDS, 15))
  steady = await load(cluster.url, RATE, SECONDS)

  console.log('2. SIGKILL of replica 1 under load')
  const killAt = 5
  const killStep = await load(cluster.url, RATE, FAULT_SECONDS, {
    during: async () => {
      await sleep(killAt + 1)
      await cluster.kill(1, 'SIGKILL')
    },
  })
  const after = killStep.timeline.filter((p) => p.second >= killAt + 2)
  killed = {
    step: killStep,
    errorsAfter: after.reduce((n, p) => n + p.errors, 0),
    secondsAfter: after.length,
  }
  await cluster.restart(1)

  console.log('3. SIGTERM of replica 0 under load, then its restart')
  rolling = await load(cluster.url, RATE, FAULT_SECONDS, {
    during: async () => {
      await sleep(6)
      await cluster.kill(0, 'SIGTERM')
      await cluster.restart(0)
    },
  })

  console.log('4. stress ramp to the first error')
  rssBefore = await Promise.all(cluster.replicas.map((_, i) => cluster.rss(i)))
  for (let rate = RATE; rate <= RATE * 64; rate *= 2) {
    const step = await load(cluster.url, rate, RAMP_SECONDS, { timeout: '5s' })
    ramp.push({ rate, step })
    if (step.errorCount > 0) break
  }
  await sleep(5)
  recovery = await load(cluster.url, RATE, 10)
  rssAfter = await Promise.all(cluster.replicas.map((_, i) => cluster.rss(i)))
} finally {
  await cluster.stop()
}

const ok =
  steady.errorCount === TARGETS.errors &&
  steady.latency.p95 < TARGETS.p95Ms &&
  steady.throughput >= TARGETS.throughput
const lastClean = ramp.filter((r) => r.step.errorCount === 0).at(-1)
const broke = ramp.find((r) => r.step.errorCount > 0)
const row = (name, s) =>
  `| ${name} | ${s.throughput.toFixed(0)} | ${s.latency.p50} | ${s.latency.p95} | ${s.latency.p99} | ${errorsText(s)} |`
writeReadmeSection(
  'nginx-replicas',
  `## nginx in front of two replicas: load, faults, stress ramp

\`node bench/nginx-replicas.js\` (part of \`npm run verify\`) — the generated nginx with TLS in front of two \`helix serve\`
replicas of one helix directory, sharing its embedded PostgreSQL and a redis-server for the rate limits, authentication
on. ${CONNECTIONS} connections, Poisson arrivals (open loop), the tiny model (y = 2x). Reference: one replica loaded directly
(no nginx, no TLS) at the same rate, in the same run. Measured ${machine()} on a shared 2-core machine that also runs the
load generator, nginx, PostgreSQL and Redis.

| phase | served (req/s) | p50 ms | p95 ms | p99 ms | errors |
|---|---|---|---|---|---|
${row(`one replica directly, rate=${RATE}, ${Math.min(SECONDS, 15)} s (reference)`, direct)}
${row(`nginx + 2 replicas, rate=${RATE}, ${SECONDS} s`, steady)}
${row(`SIGKILL of one replica at ${6} s, ${FAULT_SECONDS} s`, killed.step)}
${row(`SIGTERM + restart of one replica, ${FAULT_SECONDS} s`, rolling)}
${ramp.map((r) => row(`ramp rate=${r.rate}, ${RAMP_SECONDS} s`, r.step)).join('\n')}
${row(`recovery, rate=${RATE}, 10 s`, recovery)}

- Load: nginx + 2 replicas / direct p95 = ${(steady.latency.p95 / direct.latency.p95).toFixed(2)}×. Target (0 errors, p95 < ${TARGETS.p95Ms} ms,
  ≥ ${TARGETS.throughput} req/s): ${ok ? 'met' : 'missed'}.
- SIGKILL: ${killed.step.errorCount} requests failed (those in flight on the killed replica, which nginx does not resend
  because a POST may not be idempotent); from 2 s after the kill: ${killed.errorsAfter} errors in ${killed.secondsAfter} s.
- SIGTERM and restart: ${rolling.errorCount} errors.
- Stress ramp: ${broke ? `the first errors came at rate=${broke.rate} (${errorsText(broke.step)}), after ${lastClean ? `rate=${lastClean.rate} was served without any` : 'the first step'}` : `no errors up to rate=${ramp.at(-1)?.rate}`};
  both replicas stayed up. Recovery at rate=${RATE}: ${recovery.errorCount} errors; resident memory of the replicas before
  the ramp ${rssBefore.map((b) => (b / MiB).toFixed(0)).join(' and ')} MiB, after ${rssAfter.map((b) => (b / MiB).toFixed(0)).join(' and ')} MiB.`,
)
console.log(ok ? 'load target met' : 'load target missed')
