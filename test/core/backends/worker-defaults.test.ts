import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  DEFAULT_CPU_INSTANCES,
  defaultInstances,
  NO_SPINNING,
  OnnxBackend,
  sessionOptionsFor,
} from '../../../src/core/backends/onnx-backend.js'
import { defaultPoolSize, pooledIntraOpThreads } from '../../../src/core/backends/worker-pool.js'
import { concatInputs } from '../../../src/core/infer/batcher.js'
import { allocateMovable, isMovable } from '../../../src/core/infer/tensor-data.js'
import type { Tensor } from '../../../src/core/infer/types.js'
import { tempDir } from '../../helpers/cli.js'
import { CLS_MODEL_PATH, multiIoModel, writeOnnx } from '../../helpers/onnx-models.js'
import { maxAbsDiff, seededFloats } from '../infer/service-helpers.js'

const ITEM = 3 * 48 * 192
const clsItem = (seed: number, items = 1): Tensor => ({
  name: 'x',
  datatype: 'FP32',
  shape: [items, 3, 48, 192],
  data: seededFloats(items * ITEM, seed),
})

describe('CPU sessions by default: in the worker pool, no spinning, one intra-op thread per pool thread', () => {
  let threaded: OnnxBackend
  let inline: OnnxBackend
  beforeAll(async () => {
    threaded = new OnnxBackend({ modelPath: CLS_MODEL_PATH, device: 'cpu' })
    inline = new OnnxBackend({ modelPath: CLS_MODEL_PATH, device: 'cpu', workerThreads: false })
    await Promise.all([threaded.load(), inline.load()])
  })
  afterAll(() => Promise.all([threaded.dispose(), inline.dispose()]))

  it('runs the PP-OCR cls model in a worker thread with the main thread results', async () => {
    expect(threaded.describe().computesOffEventLoop).toBe(true)
    expect(inline.describe().computesOffEventLoop).toBeUndefined()
    const input = clsItem(7, 3)
    const [a, b] = await Promise.all([threaded.run([input]), inline.run([input])])
    expect(a[0].shape).toEqual([3, 2])
    expect(a[0].shape).toEqual(b[0].shape)
    expect(maxAbsDiff(a[0].data as Float32Array, b[0].data as Float32Array)).toBeLessThanOrEqual(1e-5)
  })

  it('moves a batch buffer to the worker with no copy and reuses its memory for the next batch', async () => {
    const requests = [1, 2].map((seed) => ({ inputs: [clsItem(seed)], batchSize: 1 }))
    const [batch] = concatInputs(requests)
    expect(isMovable(batch.data)).toBe(true)
    const expected = Float32Array.from(batch.data as Float32Array)
    const [out] = await threaded.run([batch])
    // Transferred: this side's view is detached, nothing was copied.
    expect((batch.data as Float32Array).byteLength).toBe(0)
    expect(out.shape).toEqual([2, 2])
    // The worker handed the memory back: the next batch of that size gets it (stale contents).
    const next = allocateMovable('FP32', 2 * ITEM) as Float32Array
    expect(maxAbsDiff(next, expected)).toBe(0)
    const [again] = await inline.run([{ ...batch, data: expected }])
    expect(maxAbsDiff(out.data as Float32Array, again.data as Float32Array)).toBeLessThanOrEqual(1e-5)
  })

  it('copies a lone request once and leaves the caller’s memory (a request body) intact', async () => {
    const body = seededFloats(ITEM + 4, 3)
    const view: Tensor = { ...clsItem(0), data: body.subarray(4) }
    expect(isMovable(view.data)).toBe(false)
    const [a] = await threaded.run([view])
    expect(body.byteLength).toBe((ITEM + 4) * 4)
    const [b] = await inline.run([view])
    expect(maxAbsDiff(a.data as Float32Array, b.data as Float32Array)).toBeLessThanOrEqual(1e-5)
  })
})

describe('session options', () => {
  const cpu = { providers: ['cpu'], executionProvider: 'cpu' as const }
  it('turns spinning off unless allowed and gives pooled CPU sessions the pool’s share of the cores', () => {
    const defaults = sessionOptionsFor({}, cpu, true, 1)
    expect(defaults.extra).toEqual(NO_SPINNING)
    // No per-session thread pools: the worker pool's threads are the compute threads.
    expect(defaults).toMatchObject({ intraOpNumThreads: 1, interOpNumThreads: 1 })
    expect(sessionOptionsFor({}, cpu, true, 4).intraOpNumThreads).toBe(4)
    expect(sessionOptionsFor({ allowSpinning: true }, cpu, true, 1).extra).toBeUndefined()
    expect(sessionOptionsFor({ intraOpThreads: 3, interOpThreads: 2 }, cpu, true, 1)).toMatchObject({
      intraOpNumThreads: 3,
      interOpNumThreads: 2,
    })
    // Inline sessions and GPUs keep onnxruntime's own thread defaults.
    expect(sessionOptionsFor({}, cpu, false, 1).intraOpNumThreads).toBeUndefined()
    const cuda = { providers: ['cuda', 'cpu'], executionProvider: 'cuda' as const }
    expect(sessionOptionsFor({}, cuda, true, 1).intraOpNumThreads).toBeUndefined()
    // A pool of one thread per core gives each session one thread; a smaller pool gives more.
    expect(pooledIntraOpThreads(16, 16)).toBe(1)
    expect(pooledIntraOpThreads(4, 16)).toBe(4)
    expect(pooledIntraOpThreads(32, 16)).toBe(1)
    expect(defaultPoolSize(16)).toBe(16)
    expect(defaultPoolSize(0)).toBe(1)
    expect(defaultPoolSize()).toBe(availableParallelism())
    // Up to two instances in worker threads on the CPU, one on a GPU or on the event loop.
    expect(defaultInstances(true, 'cpu')).toBe(DEFAULT_CPU_INSTANCES)
    expect(DEFAULT_CPU_INSTANCES).toBe(2)
    expect(defaultInstances(false, 'cpu')).toBe(1)
    expect(defaultInstances(true, 'cuda')).toBe(1)
    expect(defaultInstances(true, 'webgpu')).toBe(1)
  })

  it('loads with the spinning entries (onnxruntime accepts them) and with spinning allowed', async () => {
    const { dir, cleanup } = await tempDir()
    try {
      const path = await writeOnnx(join(dir, 'multi.onnx'), multiIoModel())
      for (const allowSpinning of [false, true]) {
        const backend = new OnnxBackend({
          modelPath: path,
          device: 'cpu',
          allowSpinning,
          workerThreads: false,
        })
        await backend.load()
        const [scaled] = await backend.run(
          [
            { name: 'x', datatype: 'FP32', shape: [1, 3], data: Float32Array.from([1, 2, 3]) },
            { name: 'ids', datatype: 'INT64', shape: [1, 2], data: BigInt64Array.from([1n, 2n]) },
            { name: 'scale', datatype: 'FP32', shape: [], data: Float32Array.from([2]) },
          ],
          ['scaled'],
        )
        expect(Array.from(scaled.data as Float32Array)).toEqual([2, 4, 6])
        await backend.dispose()
      }
    } finally {
      await cleanup()
    }
  })
})
