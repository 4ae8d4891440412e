// `npm run bench -- pytorch-channel`: the two ways tensors can travel between the daemon and a
// PyTorch worker (helix.yaml backends.pytorch.channel), measured in the same run on the same
// TorchScript files: `pipe` (raw frames on the worker's stdin/stdout) and `shm` (a file in /dev/shm
// that the worker maps; the frames carry only headers). The pytorch backend is driven from Node
// without HTTP or the scheduler, batches back to back, so the figures are the channel's cost plus
// the model's. Two models: the MLP of pytorch-vs-python (1 KB in, 64 B out per item) and an image
// model that only scales its input (602 KB in and out per item), where moving bytes is the work.
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { PytorchBackend } from '../dist/core/backends/pytorch/pytorch-backend.js'
import { machine, writeReadmeSection } from './support/readme-section.js'
import { mlpSource } from './support/torch-mlp.js'

const PYTHON = process.env.HELIX_BENCH_PYTHON ?? '/usr/bin/python3'
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const CHANNELS = ['pipe', 'shm']

const BUILD = `${mlpSource(256, 1024, 16)}class Scale(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0
torch.jit.save(torch.jit.script(MLP().eval()), sys.argv[1] + '/mlp.pt')
torch.jit.save(torch.jit.script(Scale().eval()), sys.argv[1] + '/scale.pt')
`

const MODELS = [
  { name: 'mlp', item: [256], out: [16], batches: [1, 32, 128] },
  { name: 'scale', item: [3, 224, 224], out: [3, 224, 224], batches: [1, 8, 32] },
]

const silent = { debug() {}, info() {}, warn() {}, error() {} }

/** Batches of `batch` items back to back through the backend for `seconds`: items/s and Node CPU ms per batch. */
async function measure(backend, model, batch, seconds) {
  const count = batch * model.item.reduce((a, b) => a * b, 1)
  const data = new Float32Array(count).map((_, i) => (i % 97) / 97)
  const x = { name: 'x', datatype: 'FP32', shape: [batch, ...model.item], data }
  const check = await backend.run([x])
  const y = check[0].data
  if (model.name === 'scale' && (y.length !== count || y[count - 1] !== data[count - 1] * 2))
    throw new Error(`the ${model.name} model answered wrongly through this channel`)
  for (let i = 0; i < 3; i++) await backend.run([x])
  const cpuBefore = process.cpuUsage()
  let batches = 0
  const start = performance.now()
  while (performance.now() - start < seconds * 1000) {
    await backend.run([x])
    batches++
  }
  const elapsed = (performance.now() - start) / 1000
  const cpu = process.cpuUsage(cpuBefore)
  return { itemsPerSecond: (batches * batch) / elapsed, nodeCpuMs: (cpu.user + cpu.system) / 1000 / batches }
}

async function withBackend(dir, model, channel, fn) {
  const backend = new PytorchBackend({
    modelPath: join(dir, `${model.name}.pt`),
    config: {
      device: 'cpu',
      max_batch_size: 128,
      intra_op_threads: 1,
      inputs: [{ name: 'x', datatype: 'FP32', dims: model.item }],
      outputs: [{ name: 'y', datatype: 'FP32', dims: model.out }],
    },
    device: 'cpu',
    settings: { python: PYTHON, channel },
    label: model.name,
    logger: silent,
  })
  await backend.load()
  try {
    return await fn(backend)
  } finally {
    await backend.dispose()
  }
}

const dir = await mkdtemp(join(tmpdir(), 'helix-bench-torch-channel-'))
try {
  await writeFile(join(dir, 'build.py'), BUILD)
  execFileSync(PYTHON, [join(dir, 'build.py'), dir])
  // results[model][batch][channel] = [items/s per round]
  const results = {}
  const cpu = {}
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 === 1 ? CHANNELS : [...CHANNELS].reverse()
    for (const model of MODELS) {
      for (const channel of order) {
        await withBackend(dir, model, channel, async (backend) => {
          for (const batch of model.batches) {
            const r = await measure(backend, model, batch, SECONDS)
            const key = `${model.name} ${batch}`
            results[key] ??= { pipe: [], shm: [] }
            cpu[key] ??= { pipe: [], shm: [] }
            results[key][channel].push(r.itemsPerSecond)
            cpu[key][channel].push(r.nodeCpuMs)
          }
        })
      }
    }
    console.log(
      `round ${round}: ${Object.entries(results)
        .map(([k, v]) => `${k} shm/pipe ${(v.shm.at(-1) / v.pipe.at(-1)).toFixed(2)}`)
        .join(', ')}`,
    )
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
  const rows = Object.entries(results).map(([key, v]) => {
    const ratios = v.pipe.map((p, i) => v.shm[i] / p)
    return { key, pipe: median(v.pipe), shm: median(v.shm), ratio: median(ratios), ratios, cpu: cpu[key] }
  })
  const mb = (key, itemsPerSecond) => {
    const model = MODELS.find((m) => key.startsWith(m.name))
    const bytes = 4 * (model.item.reduce((a, b) => a * b, 1) + model.out.reduce((a, b) => a * b, 1))
    return ((itemsPerSecond * bytes) / 1e6).toFixed(0)
  }
  const torchVersion = execFileSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], {
    encoding: 'utf8',
  }).trim()
  writeReadmeSection(
    'pytorch-channel',
    `## PyTorch worker channel: shared memory vs the pipe (issue 18)

\`npm run build && npm run bench -- pytorch-channel\` (${machine()}, torch ${torchVersion}, CPU, one worker,
\`intra_op_threads: 1\`). The pytorch backend driven from Node without HTTP or the scheduler, batches back
to back for ${SECONDS} s each, ${ROUNDS} rounds alternating which channel goes first; medians, and the median of the
per-round ratios. **pipe**: the worker's stdin/stdout carry a JSON header and the tensors' raw bytes.
**shm**: the daemon pwrites the inputs into a 0600 file in /dev/shm that the worker maps, the worker reads
them in place and writes its outputs after them, and the frames carry only headers. "mlp" is the MLP of the
pytorch bench (1 KB in, 64 B out per item); "scale" multiplies a [3, 224, 224] FP32 image by 2 (602 KB in
and out per item), so moving bytes is most of its work. Load average ${loadavg()[0].toFixed(1)} on ${availableParallelism()} cores when it ended.

| model, batch | pipe items/s (MB/s) | shm items/s (MB/s) | shm / pipe (rounds) | daemon CPU ms per batch, pipe → shm |
|---|---|---|---|---|
${rows
  .map(
    (r) =>
      `| ${r.key} | ${r.pipe.toFixed(0)} (${mb(r.key, r.pipe)}) | ${r.shm.toFixed(0)} (${mb(r.key, r.shm)}) | **${r.ratio.toFixed(2)}** (${r.ratios.map((x) => x.toFixed(2)).join(', ')}) | ${median(r.cpu.pipe).toFixed(3)} → ${median(r.cpu.shm).toFixed(3)} |`,
  )
  .join('\n')}`,
  )
  for (const r of rows)
    console.log(
      `${r.key}: pipe ${r.pipe.toFixed(0)} items/s, shm ${r.shm.toFixed(0)} items/s, shm/pipe ${r.ratio.toFixed(2)}`,
    )
} finally {
  await rm(dir, { recursive: true, force: true })
}
