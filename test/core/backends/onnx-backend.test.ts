import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { BackendLoadError, OnnxBackend } from '../../../src/core/backends/onnx-backend.js'
import { WorkerPool } from '../../../src/core/backends/worker-pool.js'
import { discoverGpus } from '../../../src/core/gpu/nvidia-smi.js'
import { GpuReservations } from '../../../src/core/gpu/placement.js'
import type { CoreLogger } from '../../../src/core/logger.js'
import { tempDir } from '../../helpers/cli.js'
import {
  addModel,
  corruptModel,
  identityModel,
  matmulChainModel,
  multiIoModel,
  unsupportedOpModel,
  writeOnnx,
} from '../../helpers/onnx-models.js'
import { type FakeNvidiaSmi, fakeNvidiaSmi, noNvidiaSmi } from '../gpu/fake-nvidia-smi.js'

function recordingLogger() {
  const lines: { level: string; obj: object; msg?: string }[] = []
  const at = (level: string) => (obj: object, msg?: string) => lines.push({ level, obj, msg })
  const logger: CoreLogger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
  return { logger, lines }
}

const f32 = (name: string, shape: number[], values: number[]) => ({
  name,
  datatype: 'FP32' as const,
  shape,
  data: Float32Array.from(values),
})

describe('OnnxBackend', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let addPath: string
  let fake: FakeNvidiaSmi | undefined
  const backends: OnnxBackend[] = []
  const make = (options: ConstructorParameters<typeof OnnxBackend>[0]) => {
    const backend = new OnnxBackend(options)
    backends.push(backend)
    return backend
  }
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    addPath = await writeOnnx(join(dir, 'add.onnx'), addModel())
  })
  afterEach(async () => {
    await Promise.all(backends.splice(0).map((b) => b.dispose()))
    await fake?.cleanup()
    fake = undefined
  })
  afterAll(() => cleanup())

  it('loads on the CPU, describes the signature and runs', async () => {
    const backend = make({
      modelPath: addPath,
      device: 'cpu',
      instances: 2,
      intraOpThreads: 1,
      interOpThreads: 1,
    })
    await backend.load()
    expect(backend.describe()).toEqual({
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [-1, 4] },
        { name: 'b', datatype: 'FP32', shape: [-1, 4] },
      ],
      outputs: [{ name: 'sum', datatype: 'FP32', shape: [-1, 4] }],
      executionProvider: 'cpu',
      device: 'cpu',
      instances: 2,
      // The CPU default: sessions compute in worker threads.
      computesOffEventLoop: true,
    })
    const [sum] = await backend.run([f32('b', [1, 4], [1, 1, 1, 1]), f32('a', [1, 4], [1, 2, 3, 4])])
    expect(sum).toEqual(f32('sum', [1, 4], [2, 3, 4, 5]))
  })

  it('returns only the outputs asked for, with int64 intact', async () => {
    const backend = make({
      modelPath: await writeOnnx(join(dir, 'multi.onnx'), multiIoModel()),
      device: 'cpu',
    })
    await backend.load()
    const out = await backend.run(
      [
        f32('x', [1, 3], [1, 2, 3]),
        { name: 'ids', datatype: 'INT64', shape: [1, 2], data: BigInt64Array.from([7n, 2n ** 40n]) },
        f32('scale', [], [2]),
      ],
      ['next_ids'],
    )
    expect(out).toEqual([
      { name: 'next_ids', datatype: 'INT64', shape: [1, 2], data: BigInt64Array.from([8n, 2n ** 40n + 1n]) },
    ])
  })

  it('carries BYTES as UTF-8 and FP16 as bit patterns', async () => {
    const bytes = make({
      modelPath: await writeOnnx(join(dir, 'id_bytes.onnx'), identityModel('BYTES')),
      device: 'cpu',
    })
    const half = make({
      modelPath: await writeOnnx(join(dir, 'id_fp16.onnx'), identityModel('FP16')),
      device: 'cpu',
    })
    await Promise.all([bytes.load(), half.load()])
    const text = ['héllo', '', '🙂'].map((s) => new TextEncoder().encode(s))
    const [echo] = await bytes.run([{ name: 'input', datatype: 'BYTES', shape: [1, 3], data: text }])
    expect(echo.data).toEqual(text)
    const [h] = await half.run([
      { name: 'input', datatype: 'FP16', shape: [1, 3], data: Uint16Array.from([0x3c00, 0x7c00, 0xfe00]) },
    ])
    expect(h).toEqual({
      name: 'output',
      datatype: 'FP16',
      shape: [1, 3],
      data: Uint16Array.from([0x3c00, 0x7c00, 0xfe00]),
    })
  })

  it('spreads concurrent runs over its instances', async () => {
    const pool = new WorkerPool({ size: 3 })
    const backend = make({
      modelPath: await writeOnnx(join(dir, 'mm.onnx'), matmulChainModel(256, 8)),
      device: 'cpu',
      instances: 3,
      pool,
    })
    await backend.load()
    const x = {
      name: 'x',
      datatype: 'FP32' as const,
      shape: [8, 256],
      data: new Float32Array(8 * 256).fill(1),
    }
    const results = await Promise.all(Array.from({ length: 6 }, () => backend.run([x])))
    for (const [y] of results) expect((y.data as Float32Array)[0]).toBeCloseTo(1, 4)
    const busy = (backend as unknown as { busy: number[] }).busy
    expect(busy).toEqual([0, 0, 0])
    // One instance per pool thread: more would only queue behind each other on a thread.
    const capped = make({ modelPath: join(dir, 'mm.onnx'), device: 'cpu', instances: 5, pool })
    await capped.load()
    expect(capped.describe().instances).toBe(3)
    expect(pool.threads).toBe(3)
    await pool.close()
  })

  it('names the cause when the file is corrupt or uses an unknown operator', async () => {
    const corrupt = make({
      modelPath: await writeOnnx(join(dir, 'corrupt.onnx'), corruptModel()),
      device: 'cpu',
    })
    await expect(corrupt.load()).rejects.toThrow(/^failed to load model.onnx: .*Protobuf parsing failed/)
    const unknown = make({
      modelPath: await writeOnnx(join(dir, 'op.onnx'), unsupportedOpModel()),
      device: 'cpu',
    })
    await expect(unknown.load()).rejects.toThrow(/NoSuchOperator/)
    const missing = make({ modelPath: join(dir, 'nope.onnx'), device: 'cpu' })
    await expect(missing.load()).rejects.toBeInstanceOf(BackendLoadError)
    await expect(missing.run([])).rejects.toThrow(/not loaded/)
    expect(() => missing.describe()).toThrow(/not loaded/)
  })

  it('device cuda fails clearly when the CUDA libraries are missing, GPU or not', async () => {
    fake = await fakeNvidiaSmi('h100-x1.csv')
    const env = fake.env
    const withGpu = make({ modelPath: addPath, device: 'cuda', discoverGpus: () => discoverGpus({ env }) })
    const error = (await withGpu.load().catch((e: BackendLoadError) => e)) as BackendLoadError
    expect(error).toBeInstanceOf(BackendLoadError)
    expect(error.reason).toMatch(
      /^CUDA is unavailable \(.*1 GPU\(s\) found\); install onnxruntime-node with its CUDA 12 libraries: npm run install:cuda/,
    )
    const none = await noNvidiaSmi()
    const noGpu = make({
      modelPath: addPath,
      device: 'cuda',
      discoverGpus: () => discoverGpus({ env: none.env }),
    })
    const error2 = (await noGpu.load().catch((e: BackendLoadError) => e)) as BackendLoadError
    await none.cleanup()
    expect(error2.reason).toMatch(
      /^CUDA is unavailable \(.*; no GPU found: nvidia-smi not found on PATH.*npm run install:cuda/,
    )
  })

  it('device cuda refuses a pinned GPU that is not there', async () => {
    fake = await fakeNvidiaSmi('h100-x2.csv')
    const env = fake.env
    const backend = make({
      modelPath: addPath,
      device: 'cuda',
      gpu: 4,
      discoverGpus: () => discoverGpus({ env }),
    })
    await expect(backend.load()).rejects.toThrow(
      'cannot place the model on a GPU: gpu 4 does not exist (found 0, 1)',
    )
  })

  it('device auto falls back to the CPU visibly when CUDA cannot start on a found GPU', async () => {
    fake = await fakeNvidiaSmi('h100-x8.csv')
    const env = fake.env
    const { logger, lines } = recordingLogger()
    const reservations = new GpuReservations()
    const backend = make({
      modelPath: addPath,
      device: 'auto',
      memoryBudgetMiB: 1024,
      reservations,
      label: 'add:1',
      logger,
      discoverGpus: () => discoverGpus({ env }),
    })
    await backend.load()
    const description = backend.describe()
    expect(description.executionProvider).toBe('cpu')
    expect(description.device).toBe('cpu')
    expect(description.fallbackReason).toMatch(/^CUDA is unavailable .*8 GPU\(s\) found/)
    expect(lines).toContainEqual({
      level: 'warn',
      obj: { model: 'add:1', fallback: description.fallbackReason },
      msg: 'device auto: running add:1 on the CPU',
    })
    // Nothing is held on a GPU the model does not use.
    expect([...reservations.snapshot.values()].every((v) => v === 0)).toBe(true)
  })

  it('device auto uses the CPU without trying CUDA when no GPU is found or none fits', async () => {
    fake = await fakeNvidiaSmi('driver-error.txt', 9)
    const env = fake.env
    const backend = make({ modelPath: addPath, device: 'auto', discoverGpus: () => discoverGpus({ env }) })
    await backend.load()
    expect(backend.describe()).toMatchObject({
      executionProvider: 'cpu',
      fallbackReason:
        "no GPU found: nvidia-smi failed (exit 9): NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
    })
    await fake.cleanup()
    fake = await fakeNvidiaSmi('h100-x1.csv')
    const env1 = fake.env
    const tooBig = make({
      modelPath: addPath,
      device: 'auto',
      memoryBudgetMiB: 100_000,
      discoverGpus: () => discoverGpus({ env: env1 }),
    })
    await tooBig.load()
    expect(tooBig.describe().fallbackReason).toBe(
      'cannot place the model on a GPU: no GPU has 100000 MiB free (most free: gpu 0 with 80164 MiB)',
    )
  })

  it('device webgpu fails clearly without an adapter', async () => {
    const backend = make({ modelPath: addPath, device: 'webgpu' })
    const error = await backend.load().catch((e: BackendLoadError) => e)
    // This host has no Vulkan adapter; on one that has, the same load succeeds on webgpu.
    if (error instanceof BackendLoadError) {
      expect(error.reason).toMatch(/^WebGPU is unavailable \(.*\); it needs a GPU reachable through Vulkan/)
    } else {
      expect(backend.describe().executionProvider).toBe('webgpu')
    }
  })
})
