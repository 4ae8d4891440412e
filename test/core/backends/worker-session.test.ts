import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OnnxBackend } from '../../../src/core/backends/onnx-backend.js'
import { createModelService } from '../../../src/core/infer/model-service.js'
import { tempDir } from '../../helpers/cli.js'
import {
  addToRepository,
  corruptModel,
  identityModel,
  matmulChainModel,
  multiIoModel,
  writeOnnx,
} from '../../helpers/onnx-models.js'

describe('sessions in worker threads', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterAll(() => cleanup())

  it('computes the same results as on the main thread, BYTES and INT64 included', async () => {
    const path = await writeOnnx(join(dir, 'multi.onnx'), multiIoModel())
    const inline = new OnnxBackend({ modelPath: path, device: 'cpu' })
    const threaded = new OnnxBackend({ modelPath: path, device: 'cpu', workerThreads: true, instances: 2 })
    await Promise.all([inline.load(), threaded.load()])
    expect(threaded.describe()).toEqual({ ...inline.describe(), instances: 2 })
    const body = new Float32Array([9, 1, 2, 3])
    // A view into a larger buffer, as a request body would be: the worker gets a copy, the caller keeps it.
    const inputs = [
      { name: 'x', datatype: 'FP32' as const, shape: [1, 3], data: body.subarray(1) },
      { name: 'ids', datatype: 'INT64' as const, shape: [1, 2], data: BigInt64Array.from([1n, 2n ** 50n]) },
      { name: 'scale', datatype: 'FP32' as const, shape: [], data: Float32Array.from([2]) },
    ]
    const [a, b] = await Promise.all([inline.run(inputs), threaded.run(inputs, ['scaled', 'next_ids'])])
    expect(b).toEqual(a)
    expect(Array.from(body)).toEqual([9, 1, 2, 3])
    const strings = new OnnxBackend({
      modelPath: await writeOnnx(join(dir, 'bytes.onnx'), identityModel('BYTES')),
      device: 'cpu',
      workerThreads: true,
    })
    await strings.load()
    const text = ['α', '', 'z'].map((s) => new TextEncoder().encode(s))
    expect(
      (await strings.run([{ name: 'input', datatype: 'BYTES', shape: [1, 3], data: text }]))[0].data,
    ).toEqual(text)
    await Promise.all([inline.dispose(), threaded.dispose(), strings.dispose()])
    await expect(threaded.run(inputs)).rejects.toThrow(/not loaded or was disposed/)
  })

  it('reports load and run failures from the worker', async () => {
    const corrupt = new OnnxBackend({
      modelPath: await writeOnnx(join(dir, 'corrupt.onnx'), corruptModel()),
      device: 'cpu',
      workerThreads: true,
    })
    await expect(corrupt.load()).rejects.toThrow(/^failed to load model.onnx: .*Protobuf parsing failed/)
    const multi = new OnnxBackend({ modelPath: join(dir, 'multi.onnx'), device: 'cpu', workerThreads: true })
    await multi.load()
    await expect(
      multi.run([{ name: 'x', datatype: 'FP32', shape: [1, 3], data: new Float32Array(3) }]),
    ).rejects.toThrow(/input 'ids' is missing|ids/)
    await multi.dispose()
  })

  it('keeps the event loop free during compute, so deadlines fire on time', async () => {
    await addToRepository(join(dir, 'repo'), 'heavy', matmulChainModel(512, 64), {
      config: { max_batch_size: 0, worker_threads: true },
    })
    const service = await createModelService({ repositoryDir: join(dir, 'repo'), defaultDevice: 'cpu' })
    try {
      const x = {
        name: 'x',
        datatype: 'FP32' as const,
        shape: [512, 512],
        data: new Float32Array(512 * 512).fill(1),
      }
      let last = performance.now()
      let longestGap = 0
      const ticker = setInterval(() => {
        const now = performance.now()
        longestGap = Math.max(longestGap, now - last)
        last = now
      }, 5)
      const started = performance.now()
      const ok = await service.infer({ model: 'heavy', inputs: [x] })
      const elapsed = performance.now() - started
      clearInterval(ticker)
      expect((ok.outputs[0].data as Float32Array)[0]).toBeCloseTo(1, 3)
      // Timers kept running while the worker computed (on the main thread the gap is the whole run).
      expect(elapsed).toBeGreaterThan(40)
      expect(longestGap).toBeLessThan(elapsed / 2)
      const error = await service.infer({ model: 'heavy', inputs: [x], timeoutMs: 5 }).catch((e) => e)
      expect(error.code).toBe('INFER_TIMEOUT')
      expect(error.message).toMatch(/timed out after 5 ms \(running\)/)
    } finally {
      await service.close()
    }
  })
})
