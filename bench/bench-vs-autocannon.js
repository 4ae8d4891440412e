// Is helix bench a trustworthy load generator? Against a bare Fastify echo server (its own process),
// helix bench must reach ≥ 90% of the throughput autocannon measures in the same run. Each round
// runs both back to back (alternating which goes first) so slow drifts of a shared machine hit both;
// the verdict is the median of the per-round ratios.
import { join } from 'node:path'
import { autocannon, helixBench, median, ROOT, startListening } from './support/processes.js'
import { machine, writeReadmeSection } from './support/readme-section.js'

const CONNECTIONS = 100
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const TARGET = 0.9

const server = await startListening(join(ROOT, 'bench', 'support', 'echo-server.js'))
const rounds = []
try {
  for (let i = 0; i < ROUNDS; i++) {
    const runAutocannon = () =>
      autocannon(`${server.url}/echo`, { connections: CONNECTIONS, seconds: SECONDS })
    const runHelix = () =>
      helixBench([
        '--target',
        'http',
        '--url',
        `${server.url}/echo`,
        '-c',
        String(CONNECTIONS),
        '-d',
        `${SECONDS}s`,
        '--warmup',
        '1s',
      ])
    let ac
    let hb
    if (i % 2 === 0) {
      ac = await runAutocannon()
      hb = await runHelix()
    } else {
      hb = await runHelix()
      ac = await runAutocannon()
    }
    const step = hb.steps[0]
    rounds.push({
      autocannon: ac.throughput,
      helix: step.throughput,
      ratio: step.throughput / ac.throughput,
      helixP99: step.latency.p99,
      autocannonP99: ac.p99,
      cpu: step.clientCpu,
      errors: step.errorCount + ac.errors,
    })
    console.log(
      `  round ${i + 1}: autocannon ${ac.throughput.toFixed(0)} req/s, helix bench ${step.throughput.toFixed(0)} req/s (client CPU ${Math.round(step.clientCpu * 100)}%)`,
    )
  }
} finally {
  await server.stop()
}
const ac = median(rounds.map((r) => r.autocannon))
const hb = median(rounds.map((r) => r.helix))
const ratio = median(rounds.map((r) => r.ratio))
const verdict = ratio >= TARGET ? 'meets' : 'misses'
console.log(`helix bench / autocannon = ${ratio.toFixed(2)} (target ≥ ${TARGET}: ${verdict})`)
writeReadmeSection(
  'autocannon',
  `## helix bench vs autocannon (load generator overhead)

\`node bench/bench-vs-autocannon.js\` — a bare Fastify echo server in its own process, ${CONNECTIONS} connections,
${SECONDS} s per run after a 1 s warm-up, ${ROUNDS} rounds of both back to back (alternating order); the verdict is the
median of the per-round ratios. Measured ${machine()} on a shared 2-core machine (server, generator and other work).

| generator | throughput (req/s, median) | p99 ms (last round) |
|---|---|---|
| autocannon 9 | ${ac.toFixed(0)} | ${rounds.at(-1).autocannonP99} |
| helix bench | ${hb.toFixed(0)} | ${rounds.at(-1).helixP99} |

Per-round ratios: ${rounds.map((r) => r.ratio.toFixed(2)).join(', ')}.
**helix bench / autocannon = ${ratio.toFixed(2)}** (median; target ≥ ${TARGET}: ${verdict}). Errors: ${rounds.reduce((a, r) => a + r.errors, 0)}.`,
)
// A missed target is a finding written to bench/README.md, not a failure of the script (as in served-vs-raw).
