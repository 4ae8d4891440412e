import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { WorkerPool } from '../../../src/core/backends/worker-pool.js'
import { LoadLimiter } from '../../../src/core/infer/load-limiter.js'
import { estimateModelMemory, parseMemorySize } from '../../../src/core/infer/memory-budget.js'
import {
  DEFAULT_LAZY_LOAD_TIMEOUT_MS,
  defaultLoadConcurrency,
  EVICTED,
} from '../../../src/core/infer/model-lifecycle.js'
import {
  createModelService,
  type HelixModelService,
  type ModelServiceOptions,
} from '../../../src/core/infer/model-service.js'
import { tempDir } from '../../helpers/cli.js'
import { addToRepository, corruptModel, scaleModel } from '../../helpers/onnx-models.js'
import { f32, heldBackends, recordingLogger, rejection } from './service-helpers.js'

const x = f32('x', [1, 4], [1, 2, 3, 4])
const LAZY = 'not loaded yet (models.load: lazy): it loads on its first request'
const first = (r: { outputs: { data: unknown }[] }) => Array.from(r.outputs[0].data as Float32Array)

describe('a repository of many models', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let service: HelixModelService | undefined
  let pool: WorkerPool
  const start = (options: Partial<ModelServiceOptions>) =>
    createModelService({ repositoryDir: dir, defaultDevice: 'cpu', workerPool: pool, ...options }).then(
      (s) => {
        service = s
        return s
      },
    )
  beforeEach(async () => {
    ;({ dir, cleanup } = await tempDir())
    pool = new WorkerPool({ size: 2 })
  })
  afterEach(async () => {
    await service?.close()
    service = undefined
    await pool.close()
    await cleanup()
  })

  it('loads 80 models concurrently on the pool’s threads; a broken one is marked with its reason', async () => {
    for (let i = 0; i < 80; i++) await addToRepository(dir, `m${String(i).padStart(2, '0')}`, scaleModel(i))
    await addToRepository(dir, 'broken', corruptModel())
    const { logger, lines } = recordingLogger()
    const s = await start({ logger, loadConcurrency: 8 })
    expect(s.isReady()).toBe(true)
    const index = s.index()
    expect(index.filter((r) => r.state === 'READY')).toHaveLength(80)
    expect(index.find((r) => r.name === 'broken')).toMatchObject({
      state: 'UNAVAILABLE',
      reason: expect.stringMatching(/^failed to load model\.onnx: .*Protobuf parsing failed/),
    })
    expect(pool.threads).toBe(2)
    const answers = await Promise.all(
      [3, 41, 79].map((i) => s.infer({ model: `m${String(i).padStart(2, '0')}`, inputs: [x] })),
    )
    expect(answers.map((a) => first(a)[3])).toEqual([12, 164, 316])
    // Progress: the count at start and the last line; a failure does not stop the others.
    const info = lines.filter((l) => l.level === 'info').map((l) => l.msg)
    expect(info[0]).toBe('loading 81 models')
    expect(info).toContain('models loaded: 81/81')
    expect(lines.find((l) => l.msg === 'models loaded: 81/81')?.obj).toEqual({
      loaded: 80,
      failed: 1,
      total: 81,
    })
    expect((await rejection(s.infer({ model: 'broken', inputs: [x] }))).code).toBe('MODEL_NOT_READY')
  })

  it('lazy: lists the models, stays ready, and loads each on its first request, once for concurrent ones', async () => {
    for (const name of ['a', 'b']) await addToRepository(dir, name, scaleModel(name === 'a' ? 2 : 3))
    const { made, backends } = heldBackends()
    const s = await start({ startupModels: 'lazy', backends })
    expect(s.index()).toEqual([
      { name: 'a', version: '', state: 'UNAVAILABLE', reason: LAZY },
      { name: 'b', version: '', state: 'UNAVAILABLE', reason: LAZY },
    ])
    expect(s.isReady()).toBe(true)
    expect(made.size).toBe(0)
    const answers = await Promise.all(Array.from({ length: 10 }, () => s.infer({ model: 'a', inputs: [x] })))
    expect(answers.every((a) => first(a)[0] === 2)).toBe(true)
    expect(made.get('a')).toBe(1)
    expect(s.index().map((r) => [r.name, r.state])).toEqual([
      ['a', 'READY'],
      ['b', 'UNAVAILABLE'],
    ])
    // A model put in the repository after the start is found on its first request too.
    await addToRepository(dir, 'late', scaleModel(5))
    expect(first(await s.infer({ model: 'late', inputs: [x] }))[0]).toBe(5)
    expect((await rejection(s.infer({ model: 'ghost', inputs: [x] }))).code).toBe('MODEL_NOT_FOUND')
    // A model that fails to load answers 503 with its reason, and is not retried on every request.
    await addToRepository(dir, 'broken', corruptModel())
    for (let i = 0; i < 2; i++) {
      const error = await rejection(s.infer({ model: 'broken', inputs: [x] }))
      expect(error.code).toBe('MODEL_NOT_READY')
      expect(error.message).toMatch(/version 1: failed to load model\.onnx/)
    }
    expect(made.get('broken')).toBe(1)
    // Unloaded by an operator: stays unloaded until loaded again.
    await s.unload('a')
    expect((await rejection(s.infer({ model: 'a', inputs: [x] }))).message).toMatch(/unloaded/)
    expect(made.get('a')).toBe(1)
    expect(DEFAULT_LAZY_LOAD_TIMEOUT_MS).toBe(30_000)
  })

  it('lazy: a request waits for the load up to the bound, then gets 503 while the load goes on', async () => {
    await addToRepository(dir, 'slow', scaleModel(2))
    const { backends, hold } = heldBackends()
    const release = hold()
    const s = await start({ startupModels: 'lazy', backends, lazyLoadTimeoutMs: 50 })
    const error = await rejection(s.infer({ model: 'slow', inputs: [x] }))
    expect(error.code).toBe('MODEL_NOT_READY')
    expect(error.message).toBe(
      "Model 'slow' is not ready: it is still loading after 50 ms (models.lazy_load_timeout_ms); retry shortly.",
    )
    // A load for one request does not take the server out of rotation.
    expect(s.index()).toEqual([{ name: 'slow', version: '1', state: 'LOADING' }])
    expect(s.isReady()).toBe(true)
    release()
    await expect.poll(() => s.index()[0].state).toBe('READY')
    expect(first(await s.infer({ model: 'slow', inputs: [x] }))[0]).toBe(2)
  })

  it('none: lists the models and loads one through the repository load API', async () => {
    await addToRepository(dir, 'a', scaleModel(2))
    const s = await start({ startupModels: 'none' })
    expect(s.index()[0]).toMatchObject({
      name: 'a',
      state: 'UNAVAILABLE',
      reason: expect.stringMatching(/^not loaded/),
    })
    // Not loaded on demand: models.load none means an operator decides.
    expect((await rejection(s.infer({ model: 'a', inputs: [x] }))).code).toBe('MODEL_NOT_READY')
    await s.load('a')
    expect(first(await s.infer({ model: 'a', inputs: [x] }))[0]).toBe(2)
  })

  it('unloads the least recently used idle models to stay within the memory budget', async () => {
    for (const [i, name] of ['a', 'b', 'c'].entries()) await addToRepository(dir, name, scaleModel(i + 1))
    const size = (await stat(join(dir, 'a', '1', 'model.onnx'))).size
    // Room for two of these models (they are the same size), not three.
    const budget = Math.floor(estimateModelMemory(size, 1) * 2.5)
    const { made, backends } = heldBackends()
    const { logger, lines } = recordingLogger()
    const s = await start({
      startupModels: 'lazy',
      memoryBudgetBytes: budget,
      backends,
      logger,
    })
    await s.infer({ model: 'a', inputs: [x] })
    await s.infer({ model: 'b', inputs: [x] })
    await s.infer({ model: 'a', inputs: [x] })
    // c needs room: b is the least recently used.
    expect(first(await s.infer({ model: 'c', inputs: [x] }))[0]).toBe(3)
    const state = () => Object.fromEntries(s.index().map((r) => [r.name, r.state]))
    expect(state()).toEqual({ a: 'READY', b: 'UNAVAILABLE', c: 'READY' })
    expect(s.index().find((r) => r.name === 'b')?.reason).toBe(EVICTED)
    expect(
      lines.some(
        (l) => l.msg === 'model b unloaded (least recently used) to stay within models.memory_budget',
      ),
    ).toBe(true)
    // b's next request loads it again, unloading a (now the least recently used).
    expect(first(await s.infer({ model: 'b', inputs: [x] }))[0]).toBe(2)
    expect(state()).toEqual({ a: 'UNAVAILABLE', b: 'READY', c: 'READY' })
    expect(made.get('b')).toBe(2)
  })

  it('never unloads a model with requests in flight; a load that cannot fit says why', async () => {
    await addToRepository(dir, 'busy', scaleModel(2), {
      config: { max_batch_size: 8, max_queue_delay_ms: 10_000 },
    })
    await addToRepository(dir, 'other', scaleModel(3))
    const size = (await stat(join(dir, 'busy', '1', 'model.onnx'))).size
    const s = await start({
      startupModels: 'lazy',
      memoryBudgetBytes: Math.floor(estimateModelMemory(size, 1) * 1.5),
    })
    // A full batch goes at once (a lone request would wait for company).
    await s.infer({ model: 'busy', inputs: [f32('x', [8, 4], new Array(32).fill(1))] })
    // A request that waits in busy's queue (for company, up to 10 s): busy is not idle.
    const inFlight = s.infer({ model: 'busy', inputs: [x] })
    const error = await rejection(s.infer({ model: 'other', inputs: [x] }))
    expect(error.code).toBe('MODEL_NOT_READY')
    expect(error.message).toMatch(/models\.memory_budget \(\d+ MiB\) cannot hold it: it needs ~\d+ MiB/)
    expect(s.index().find((r) => r.name === 'busy')?.state).toBe('READY')
    // Once busy is idle, the refused model loads on its next request.
    await s.unload('busy').catch(() => undefined)
    await inFlight.catch(() => undefined)
    expect(first(await s.infer({ model: 'other', inputs: [x] }))[0]).toBe(3)
  })
})

describe('load bounds and budget units', () => {
  it('runs at most `limit` loads at once, in order', async () => {
    const limiter = new LoadLimiter(2)
    let running = 0
    let most = 0
    const order: number[] = []
    await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        limiter.run(async () => {
          running++
          most = Math.max(most, running)
          await new Promise((r) => setTimeout(r, 5))
          order.push(i)
          running--
        }),
      ),
    )
    expect(most).toBe(2)
    expect(order).toHaveLength(6)
    await expect(limiter.run(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    expect(await limiter.run(async () => 'next')).toBe('next')
    expect(defaultLoadConcurrency(2)).toBe(4)
    expect(defaultLoadConcurrency(1)).toBe(2)
  })

  it('reads sizes as helix.yaml writes them', () => {
    expect(parseMemorySize('2g')).toBe(2 * 1024 ** 3)
    expect(parseMemorySize('512M')).toBe(512 * 1024 ** 2)
    expect(parseMemorySize('64k')).toBe(65536)
    expect(parseMemorySize('1000')).toBe(1000)
    expect(parseMemorySize(4096)).toBe(4096)
    expect(() => parseMemorySize('2 GB')).toThrow(/is not a size/)
    expect(estimateModelMemory(1000, 2)).toBe(2 * estimateModelMemory(1000, 1))
  })
})
