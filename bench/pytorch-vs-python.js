// `npm run bench -- pytorch`: a TorchScript MLP served by helix (the pytorch backend: Python worker,
// dynamic batching, single-item REST binary requests) against the same module run by torch in a
// Python loop at its best batch size, measured in the same run. Target: served / Python >= 0.8.
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { PytorchBackend } from '../dist/core/backends/pytorch/pytorch-backend.js'
import { startServedModel } from './lib/served-model.js'
import { machine, writeReadmeSection } from './support/readme-section.js'
import { mlpSource } from './support/torch-mlp.js'

const PYTHON = process.env.HELIX_BENCH_PYTHON ?? '/usr/bin/python3'
const IN = 256
const HIDDEN = Number(process.env.BENCH_HIDDEN ?? 1024)
const OUT = 16
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)

const BUILD = `${mlpSource(IN, HIDDEN, OUT)}torch.jit.save(torch.jit.script(MLP().eval()), sys.argv[1])
`

// The reference: the saved module in a Python loop, per batch size, items per second.
const PYTHON_LOOP = `
import json, sys, time, torch
m = torch.jit.load(sys.argv[1]); m.eval()
seconds = float(sys.argv[2])
out = {}
for bs in (1, 8, 16, 32, 64, 128):
    x = torch.randn(bs, ${IN})
    with torch.inference_mode():
        for _ in range(5): m(x)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            m(x); n += bs
    out[bs] = n / (time.perf_counter() - start)
print(json.dumps(out))
`

const CONFIG = {
  device: 'cpu',
  max_batch_size: 128,
  intra_op_threads: Number(process.env.BENCH_TORCH_THREADS ?? 1),
  max_queue_delay_ms: 2,
  inputs: [{ name: 'x', datatype: 'FP32', dims: [IN] }],
  outputs: [{ name: 'y', datatype: 'FP32', dims: [OUT] }],
}

/** The backend alone (its Python worker and its channel, no HTTP, no scheduler): batches of `batch` back to back. */
async function backendAlone(modelPath, batch, seconds) {
  const silent = { debug() {}, info() {}, warn() {}, error() {} }
  const backend = new PytorchBackend({
    modelPath,
    config: CONFIG,
    device: 'cpu',
    settings: { python: PYTHON },
    label: 'mlp',
    logger: silent,
  })
  await backend.load()
  try {
    const x = {
      name: 'x',
      datatype: 'FP32',
      shape: [batch, IN],
      data: new Float32Array(batch * IN).fill(0.5),
    }
    for (let i = 0; i < 5; i++) await backend.run([x])
    let items = 0
    const start = performance.now()
    while (performance.now() - start < seconds * 1000) {
      await backend.run([x])
      items += batch
    }
    return items / ((performance.now() - start) / 1000)
  } finally {
    await backend.dispose()
  }
}

const dir = await mkdtemp(join(tmpdir(), 'helix-bench-torch-'))
try {
  const modelPath = join(dir, 'mlp.pt')
  await writeFile(join(dir, 'build.py'), BUILD)
  execFileSync(PYTHON, [join(dir, 'build.py'), modelPath])
  const item = new Float32Array(IN).map((_, i) => Math.sin(i))
  const served = await startServedModel({
    modelPath,
    modelFile: 'model.pt',
    config: CONFIG,
    input: 'x',
    output: 'y',
    item,
    itemShape: [IN],
    concurrency: 64,
  })
  const rows = []
  try {
    for (let round = 1; round <= ROUNDS; round++) {
      const python = JSON.parse(
        execFileSync(PYTHON, ['-c', PYTHON_LOOP, modelPath, String(SECONDS / 6)], { encoding: 'utf8' }),
      )
      const [bestBatch, bestRate] = Object.entries(python).sort((a, b) => b[1] - a[1])[0]
      const r = await served.measure(SECONDS * 1000, 1000)
      const alone = await backendAlone(modelPath, Number(bestBatch), SECONDS / 2)
      rows.push({
        round,
        served: r.itemsPerSecond,
        meanBatch: r.meanBatch,
        python,
        bestBatch,
        bestRate,
        alone,
      })
      console.log(
        `round ${round}: served ${r.itemsPerSecond.toFixed(0)} items/s (mean batch ${r.meanBatch?.toFixed?.(1)}), python best ${bestRate.toFixed(0)} items/s at batch ${bestBatch}: ratio ${(r.itemsPerSecond / bestRate).toFixed(2)}`,
      )
    }
  } finally {
    await served.close()
  }
  const ratios = rows.map((r) => r.served / r.bestRate).sort((a, b) => a - b)
  const median = ratios[Math.floor(ratios.length / 2)]
  const torchVersion = execFileSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], {
    encoding: 'utf8',
  }).trim()
  writeReadmeSection(
    'pytorch',
    `## PyTorch backend: served vs a Python loop (issue 18)

\`npm run build && npm run bench -- pytorch\` (${machine()}, torch ${torchVersion} from Debian's
python3-torch, CPU). A TorchScript MLP ${IN}→${HIDDEN}→${HIDDEN}→${OUT} (ReLU) served by \`helix serve\` (no auth)
as \`model.pt\` with \`max_batch_size: 128\`, \`intra_op_threads: ${CONFIG.intra_op_threads}\` (torch threads in the worker; the daemon needs a core too), \`max_queue_delay_ms: 2\`, one Python worker: 64 connections each
sending single-item REST binary requests, against the same file run by torch in a Python loop at
each batch size (its best counted), alternated in the same run, ${SECONDS} s per side per round;
load average ${loadavg()[0].toFixed(1)} on ${availableParallelism()} cores when it ended (other work on the machine moves every figure).

| round | served items/s (mean batch) | Python loop best items/s (batch) | backend alone at that batch | served / Python |
|---|---|---|---|---|
${rows
  .map(
    (r) =>
      `| ${r.round} | ${r.served.toFixed(0)} (${Number(r.meanBatch ?? 0).toFixed(1)}) | ${r.bestRate.toFixed(0)} (${r.bestBatch}) | ${r.alone.toFixed(0)} | ${(r.served / r.bestRate).toFixed(2)} |`,
  )
  .join('\n')}

Median **${median.toFixed(2)}** (target ≥ 0.8). "Backend alone" runs the same batches through the
pytorch backend from Node without HTTP or the scheduler (Python worker, raw tensors through /dev/shm: backends.pytorch.channel auto): what the
channel itself costs. The served side shares the machine's cores between the daemon's HTTP work,
the load generator and torch; the Python loop has them to itself. Python loop per batch size in the last round:
${Object.entries(rows.at(-1).python)
  .map(([bs, v]) => `${bs}: ${v.toFixed(0)}`)
  .join(', ')} items/s.`,
  )
  console.log(`served / python loop (median of ${ROUNDS}): ${median.toFixed(2)}`)
} finally {
  await rm(dir, { recursive: true, force: true })
}
