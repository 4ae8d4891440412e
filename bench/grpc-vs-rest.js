// gRPC vs REST on one real daemon: the PP-OCR text-direction classifier served by `helix serve` (a
// fresh helix directory, the embedded PostgreSQL, API-key auth and rate limiting on), loaded by
// helix bench with 32 calls in flight, in interleaved rounds of the same run:
//   REST   POST /v2/models/cls/infer with the binary tensor extension (binary output too);
//   gRPC   inference.GRPCInferenceService/ModelInfer with raw_input_contents (one channel);
//   gRPC×32 the same calls over 32 HTTP/2 connections, one per call in flight as REST has: the calls
//          no longer share one connection's HTTP/2 receive window (64 KB in the daemon);
//   stream ModelStreamInfer, 32 streams with one request in flight each (answers checked in order).
// Target: the median of the per-round ratios gRPC / REST ≥ 0.9. Daemon CPU per request (from /proc)
// and the generator's own CPU are printed beside the throughput, since both share this machine.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { processCpuSeconds } from './lib/measure.js'
import { serveModels, warmUp } from './support/helix-serve.js'
import { helixBench, median, ROOT } from './support/processes.js'
import { machine, writeReadmeSection } from './support/readme-section.js'

const MODEL = (await import(join(ROOT, 'dist', 'ops', 'demo-model.js'))).demoModelPath()
const SHAPE = 'x=1,3,48,192'
const CONCURRENCY = 32
const SECONDS = Number(process.env.BENCH_SECONDS ?? 4)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10)
const WARMUP_S = 1
// gRPC channels (HTTP/2 connections) the calls share; 1 is what a gRPC client does by default.
const CHANNELS = Number(process.env.BENCH_CHANNELS ?? 1)
const TARGET = 0.9

const helix = await serveModels({ cls: MODEL })
const record = JSON.parse(readFileSync(join(helix.dir, 'data', 'daemon.json'), 'utf8'))
if (!record.grpc) throw new Error(`the daemon serves no gRPC: ${JSON.stringify(record)}`)
const grpcTarget = record.grpc.target
const common = [
  '--model',
  'cls',
  '--shape',
  SHAPE,
  '-c',
  String(CONCURRENCY),
  '-d',
  `${SECONDS}s`,
  '--warmup',
  `${WARMUP_S}s`,
  ...helix.keyArgs,
]
const modes = [
  { key: 'rest', label: 'REST, binary tensor extension', args: ['--url', helix.url, '--binary'] },
  {
    key: 'grpc',
    label: `gRPC ModelInfer, raw_input_contents (${CHANNELS} channel${CHANNELS === 1 ? '' : 's'})`,
    args: ['--target', 'grpc', '--url', grpcTarget, '--channels', String(CHANNELS)],
  },
  {
    key: 'grpc32',
    label: `gRPC ModelInfer, raw_input_contents (${CONCURRENCY} channels)`,
    args: ['--target', 'grpc', '--url', grpcTarget, '--channels', String(CONCURRENCY)],
  },
  {
    key: 'stream',
    label: `gRPC ModelStreamInfer, ${CONCURRENCY} streams`,
    args: ['--target', 'grpc-stream', '--url', grpcTarget, '--channels', String(CHANNELS)],
  },
]
const rounds = []
console.log(
  `PP-OCR cls, item [${SHAPE.slice(2)}] float32 (110 KB), ${CONCURRENCY} in flight, ${ROUNDS} rounds of ${SECONDS} s, REST ${helix.url}, gRPC ${grpcTarget}`,
)
try {
  await warmUp(helix.url, 'cls', 3, [...helix.keyArgs, '--shape', SHAPE, '--binary'])
  for (let i = 0; i < ROUNDS; i++) {
    const round = {}
    for (const mode of i % 2 === 0 ? modes : [...modes].reverse()) {
      const cpuBefore = processCpuSeconds(record.pid)
      const result = await helixBench([...mode.args, ...common])
      const cpu = processCpuSeconds(record.pid) - cpuBefore
      const step = result.steps[0]
      // The daemon's CPU covers the warm-up too: scale it to the requests of the whole run.
      const requests = step.requests * (1 + WARMUP_S / SECONDS)
      round[mode.key] = { ...step, daemonCpuMs: (1000 * cpu) / requests }
    }
    round.ratio = round.grpc.throughput / round.rest.throughput
    // The daemon's own cost: REST's CPU per request over gRPC's (above 1: a gRPC call costs the daemon less).
    round.cpuRatio = round.rest.daemonCpuMs / round.grpc.daemonCpuMs
    round.streamRatio = round.stream.throughput / round.rest.throughput
    round.channelsRatio = round.grpc32.throughput / round.rest.throughput
    rounds.push(round)
    console.log(
      `  round ${i + 1}: ${modes.map((m) => `${m.key} ${round[m.key].throughput.toFixed(0)} req/s (p99 ${round[m.key].latency.p99} ms, errors ${round[m.key].errorCount})`).join(', ')}; gRPC/REST ${round.ratio.toFixed(2)}, gRPC×${CONCURRENCY}/REST ${round.channelsRatio.toFixed(2)}, stream/REST ${round.streamRatio.toFixed(2)}`,
    )
  }
} finally {
  await helix.stop()
}

const med = (key, pick) => median(rounds.map((r) => pick(r[key])))
const ratio = median(rounds.map((r) => r.ratio))
const streamRatio = median(rounds.map((r) => r.streamRatio))
const channelsRatio = median(rounds.map((r) => r.channelsRatio))
const cpuRatio = median(rounds.map((r) => r.cpuRatio))
const errors = Object.fromEntries(
  modes.map((m) => [m.key, rounds.reduce((a, r) => a + r[m.key].errorCount, 0)]),
)
const checked = rounds.every((r) =>
  ['grpc', 'grpc32', 'stream'].every((k) => r[k].checkedAnswers === r[k].successes),
)
const rows = modes.map((m) => ({
  ...m,
  throughput: med(m.key, (s) => s.throughput),
  p50: Number(med(m.key, (s) => s.latency.p50).toFixed(2)),
  p99: Number(med(m.key, (s) => s.latency.p99).toFixed(2)),
  daemonCpuMs: med(m.key, (s) => s.daemonCpuMs),
  clientCpu: med(m.key, (s) => s.clientCpu),
}))
const meets = ratio >= TARGET
const summary = {
  bench: 'grpc-vs-rest',
  grpcVsRest: Number(ratio.toFixed(3)),
  streamVsRest: Number(streamRatio.toFixed(3)),
  channelsVsRest: Number(channelsRatio.toFixed(3)),
  daemonCpuRestOverGrpc: Number(cpuRatio.toFixed(3)),
  rounds: rounds.map((r) => Number(r.ratio.toFixed(2))),
  streamRounds: rounds.map((r) => Number(r.streamRatio.toFixed(2))),
  channelsRounds: rounds.map((r) => Number(r.channelsRatio.toFixed(2))),
  modes: Object.fromEntries(
    rows.map((r) => [
      r.key,
      {
        throughput: Math.round(r.throughput),
        p50: r.p50,
        p99: r.p99,
        daemonCpuMs: Number(r.daemonCpuMs.toFixed(3)),
        clientCpu: r.clientCpu,
      },
    ]),
  ),
  errors,
  checked,
}
console.log(JSON.stringify(summary))
console.log(
  `gRPC / REST = ${ratio.toFixed(2)} (target ≥ ${TARGET}: ${meets ? 'meets' : 'misses'}); ${CONCURRENCY} channels / REST = ${channelsRatio.toFixed(2)}; stream / REST = ${streamRatio.toFixed(2)}; daemon CPU REST / gRPC = ${cpuRatio.toFixed(2)}`,
)

const fmt = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(2))
writeReadmeSection(
  'grpc',
  `## gRPC vs REST on one daemon (PP-OCR cls)

\`npm run build && npm run bench -- grpc\` (or \`node bench/grpc-vs-rest.js\`; \`BENCH_ROUNDS\`, \`BENCH_SECONDS\`,
\`BENCH_CHANNELS\` tune it). One \`helix serve\` from dist/ in a fresh helix directory (\`helix init\`, the embedded
PostgreSQL, an API key with the infer and models:read scopes, auth and rate limiting on, helix's default
batching), serving \`ch_ppocr_mobile_v2.0_cls_infer.onnx\` (input \`x\` float32 [1,3,48,192], 110 KB per request).
helix bench (the built CLI, its own process) keeps ${CONCURRENCY} calls in flight for ${SECONDS} s after a ${WARMUP_S} s warm-up
with the same API key, in ${ROUNDS} interleaved rounds (REST, gRPC, gRPC×${CONCURRENCY}, stream, then the reverse):

- **REST**: \`POST /v2/models/cls/infer\` with the binary tensor extension (binary output), ${CONCURRENCY} keep-alive connections;
- **gRPC**: \`inference.GRPCInferenceService/ModelInfer\` with \`raw_input_contents\` (raw output), ${CONCURRENCY} concurrent calls
  on ${CHANNELS} HTTP/2 connection${CHANNELS === 1 ? '' : 's'} (what a gRPC client opens by default), every answer decoded and checked (output
  name, datatype, size); **gRPC×${CONCURRENCY}**: the same over ${CONCURRENCY} connections, one per call in flight as REST has;
- **stream**: \`ModelStreamInfer\`, ${CONCURRENCY} bidirectional streams with one request in flight each, every answer checked
  and matched to its request by id (in order).

Measured ${machine()} on a shared 2-core machine (daemon and generator on the same cores).

| | req/s (median) | p50 ms | p99 ms | daemon CPU ms/request | generator CPU (cores) | generator CPU ms/request | errors |
|---|---|---|---|---|---|---|---|
${rows.map((r) => `| ${r.label} | ${r.throughput.toFixed(0)} | ${r.p50} | ${r.p99} | ${fmt(r.daemonCpuMs)} | ${r.clientCpu.toFixed(2)} | ${((1000 * r.clientCpu) / r.throughput).toFixed(3)} | ${errors[r.key]} |`).join('\n')}

Per-round gRPC / REST: ${rounds.map((r) => r.ratio.toFixed(2)).join(', ')}; gRPC×${CONCURRENCY} / REST: ${rounds.map((r) => r.channelsRatio.toFixed(2)).join(', ')};
stream / REST: ${rounds.map((r) => r.streamRatio.toFixed(2)).join(', ')}.
**gRPC / REST = ${ratio.toFixed(2)}** (median; target ≥ ${TARGET}: ${meets ? 'meets' : '**misses**'}) · gRPC×${CONCURRENCY} / REST = ${channelsRatio.toFixed(2)} ·
**stream / REST = ${streamRatio.toFixed(2)}**.
Daemon CPU per REST request / per unary gRPC call (median of the rounds): **${cpuRatio.toFixed(2)}**: what the
daemon spends on the two faces, without the generator, which shares the cores.
Every gRPC answer was checked: ${checked ? 'yes' : 'no'}.`,
)
// A missed target is a finding written to bench/README.md, not a failure of the script (as in served-vs-raw).
