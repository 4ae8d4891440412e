import { existsSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PytorchBackend } from '../../../src/core/backends/pytorch/pytorch-backend.js'
import { resolveChannel, type TorchChannel } from '../../../src/core/backends/pytorch/torch-worker.js'
import type { Tensor } from '../../../src/core/infer/types.js'
import { tempDir } from '../../helpers/cli.js'
import { DEBIAN_PYTHON, hasPythonTorch } from '../../helpers/tools.js'
import {
  buildTorchModels,
  MIX_IO,
  type TorchModels,
  torchReference,
  torchWorkerPids,
} from '../../helpers/torch-models.js'
import { maxAbsDiff, recordingLogger, seededFloats } from '../infer/service-helpers.js'

/** The shm channel's files of this process still in /dev/shm (they are unlinked once a worker opened them). */
async function shmLeftovers(): Promise<string[]> {
  return (await readdir('/dev/shm')).filter((f) => f.startsWith(`helix-torch-${process.pid}-`))
}

function mixInputs(rows: number, seed: number): Tensor[] {
  return [
    { name: 'a', datatype: 'FP32', shape: [rows, 4], data: seededFloats(rows * 4, seed) },
    { name: 'b', datatype: 'FP32', shape: [rows, 4], data: seededFloats(rows * 4, seed + 1) },
  ]
}

describe('backends.pytorch.channel: auto', () => {
  it('is shm where /dev/shm exists (Linux), else the pipe', () => {
    expect(resolveChannel('auto')).toBe(existsSync('/dev/shm') ? 'shm' : 'pipe')
    expect(resolveChannel('pipe')).toBe('pipe')
    expect(resolveChannel('shm')).toBe('shm')
  })
})

describe.skipIf(!hasPythonTorch())('PyTorch worker channels: pipe and shm (/dev/shm)', () => {
  let cleanup: () => Promise<void>
  let models: TorchModels
  const backends: PytorchBackend[] = []

  async function open(channel: TorchChannel, file: 'mix' | 'slow' = 'mix'): Promise<PytorchBackend> {
    const config =
      file === 'mix'
        ? { device: 'cpu' as const, max_batch_size: 16, ...MIX_IO }
        : {
            device: 'cpu' as const,
            max_batch_size: 0,
            inputs: [{ name: 'x', datatype: 'FP32', dims: [1, 1] }],
            outputs: [{ name: 'y', datatype: 'FP32', dims: [1, 1] }],
          }
    const backend = new PytorchBackend({
      modelPath: models.files[file],
      config,
      device: 'cpu',
      settings: { python: DEBIAN_PYTHON, channel, run_timeout_s: 30 },
      label: `${file}-${channel}`,
      logger: recordingLogger().logger,
    })
    backends.push(backend)
    await backend.load()
    return backend
  }

  beforeAll(async () => {
    const made = await tempDir('helix-torch-channel-')
    cleanup = made.cleanup
    models = await buildTorchModels(made.dir)
  }, 120_000)
  afterAll(async () => {
    await Promise.all(backends.map((b) => b.dispose()))
    await cleanup?.()
  })

  it('shm answers exactly as torch does directly, and as the pipe does', async () => {
    const shm = await open('shm')
    const pipe = await open('pipe')
    const inputs = mixInputs(3, 11)
    const expected = await torchReference(
      models.files.mix,
      inputs.map((t) => ({ data: Array.from(t.data as Float32Array), shape: t.shape })),
    )
    const viaShm = await shm.run(inputs)
    const viaPipe = await pipe.run(inputs)
    expect(viaShm.map((t) => [t.name, t.shape])).toEqual([
      ['y', [3, 3]],
      ['z', [3, 4]],
    ])
    for (const [i, out] of viaShm.entries()) {
      expect(maxAbsDiff(Array.from(out.data as Float32Array), expected[i] as number[])).toBeLessThanOrEqual(
        1e-5,
      )
      expect(out.data).toEqual(viaPipe[i]?.data)
    }
    // An output named alone comes back alone.
    const onlyZ = await shm.run(inputs, ['z'])
    expect(onlyZ.map((t) => t.name)).toEqual(['z'])
    expect(onlyZ[0]?.data).toEqual(viaPipe[1]?.data)
  }, 60_000)

  it.each(['shm', 'pipe'] as const)(
    '%s carries batches of megabytes exactly (2.2 MB in, 1.9 MB out; shm grows its file)',
    async (channel) => {
      const shm = await open(channel)
      const rows = 70_000
      const inputs = mixInputs(rows, 21)
      const [y, z] = await shm.run(inputs)
      const a = inputs[0]?.data as Float32Array
      const b = inputs[1]?.data as Float32Array
      // z = a * b elementwise in float32: exact in JavaScript too.
      const zData = z?.data as Float32Array
      expect(zData.length).toBe(rows * 4)
      let wrong = 0
      for (let i = 0; i < zData.length; i++)
        if (zData[i] !== Math.fround((a[i] as number) * (b[i] as number))) wrong++
      expect(wrong).toBe(0)
      expect(y?.shape).toEqual([rows, 3])
      // A small batch after the large one still reads its own bytes, not the large batch's.
      const small = mixInputs(2, 31)
      const [, zSmall] = await shm.run(small)
      const as = small[0]?.data as Float32Array
      const bs = small[1]?.data as Float32Array
      expect(Array.from(zSmall?.data as Float32Array)).toEqual(
        Array.from(as, (v, i) => Math.fround(v * (bs[i] as number))),
      )
    },
    60_000,
  )

  it('shm serves 24 concurrent runs of different data one after another, each getting its own answer', async () => {
    const shm = await open('shm')
    const batches = Array.from({ length: 24 }, (_, i) => mixInputs(1 + (i % 5) * 300, 100 + i))
    const answers = await Promise.all(batches.map((inputs) => shm.run(inputs, ['z'])))
    for (const [i, inputs] of batches.entries()) {
      const a = inputs[0]?.data as Float32Array
      const b = inputs[1]?.data as Float32Array
      const z = answers[i]?.[0]?.data as Float32Array
      expect(z.length).toBe(a.length)
      expect(z.every((v, j) => v === Math.fround((a[j] as number) * (b[j] as number)))).toBe(true)
    }
  }, 60_000)

  it('leaves no file in /dev/shm: unlinked once the worker opened it, also after a crash and a restart', async () => {
    const slow = await open('shm', 'slow')
    expect(await shmLeftovers()).toEqual([])
    const pid = (await torchWorkerPids(models.files.slow))[0]
    expect(pid).toBeGreaterThan(0)
    // A long run in flight, then the worker killed under it: that run fails with 503's error.
    const hung = slow.run([{ name: 'x', datatype: 'FP32', shape: [1, 1], data: new Float32Array([5e7]) }])
    await new Promise((r) => setTimeout(r, 300))
    process.kill(pid as number, 'SIGKILL')
    await expect(hung).rejects.toMatchObject({ code: 'MODEL_NOT_READY' })
    // The restarted worker gets a new file and answers correctly through it.
    const [y] = await slow.run([{ name: 'x', datatype: 'FP32', shape: [1, 1], data: new Float32Array([2]) }])
    expect(Array.from((y as Tensor).data as Float32Array)[0]).toBeCloseTo(Math.sin(Math.sin(2)), 6)
    expect(await shmLeftovers()).toEqual([])
    await slow.dispose()
    expect(await shmLeftovers()).toEqual([])
  }, 60_000)
})
