import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OnnxBackend } from '../../../src/core/backends/onnx-backend.js'
import { prepareRequest } from '../../../src/core/infer/input-validation.js'
import { createModelService } from '../../../src/core/infer/model-service.js'
import { type ScheduledResult, Scheduler } from '../../../src/core/infer/scheduler.js'
import type { Tensor } from '../../../src/core/infer/types.js'
import { tempDir } from '../../helpers/cli.js'
import { addModel, addToRepository, writeOnnx } from '../../helpers/onnx-models.js'
import { f32 } from './service-helpers.js'

// Gathering while a batch computes, on the real add model (a + b, FP32 [batch, 4]).
describe('Scheduler with queueAhead (worker-thread backends)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let backend: OnnxBackend
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    backend = new OnnxBackend({
      modelPath: await writeOnnx(join(dir, 'add.onnx'), addModel()),
      device: 'cpu',
    })
    await backend.load()
  })
  afterAll(async () => {
    await backend.dispose()
    await cleanup()
  })

  const request = (value: number) =>
    prepareRequest(
      'add',
      backend.describe(),
      { inputs: [f32('a', [1, 4], [value, value, value, value]), f32('b', [1, 4], [1, 1, 1, 1])] },
      { batchable: true, maxBatchSize: 4 },
    )

  /** A scheduler whose batches wait for `open()` before they reach the backend. */
  function gated(queueAhead: boolean) {
    let open: () => void = () => undefined
    let gate = new Promise<void>((resolve) => {
      open = resolve
    })
    const sizes: number[] = []
    const scheduler = new Scheduler({
      model: 'add',
      maxBatchSize: 4,
      maxQueueDelayMs: 0,
      maxQueueSize: 100,
      concurrency: 1,
      queueAhead,
      execute: async (inputs: Tensor[], outputs?: string[]) => {
        sizes.push(inputs[0].shape[0])
        await gate
        return backend.run(inputs, outputs)
      },
    })
    const release = () => {
      open()
      gate = new Promise<void>((resolve) => {
        open = resolve
      })
    }
    return { scheduler, sizes, release: () => release() }
  }

  it('hands each instance its next batch while one computes, cut from the load in flight', async () => {
    const { scheduler, sizes, release } = gated(true)
    const answers: Promise<ScheduledResult>[] = []
    answers.push(scheduler.enqueue(request(0)))
    // Nothing running: the classic rule (full, or due after the delay, 0 here).
    expect(scheduler.stats().inFlightBatches).toBe(1)
    answers.push(scheduler.enqueue(request(1)))
    // One batch running, two items in flight: one computing and one ready per instance = batches of 1.
    expect(scheduler.stats()).toMatchObject({ inFlightBatches: 2, queueDepth: 0 })
    for (let v = 2; v <= 7; v++) answers.push(scheduler.enqueue(request(v)))
    // The instance has a batch computing and one ready: the rest waits.
    expect(scheduler.stats()).toMatchObject({ inFlightBatches: 2, queueDepth: 6 })
    release()
    await Promise.all(answers.slice(0, 2))
    // Seven in flight on one instance: the batch made ready holds ceil(7 / 2) = 4 (the cap). The two
    // left are fewer than ceil(6 / 2) = 3, so they wait for the instance although due (delay 0).
    expect(scheduler.stats()).toMatchObject({ inFlightBatches: 1, queueDepth: 2 })
    release()
    await Promise.all(answers.slice(2, 6))
    // Two left for one instance (two items per instance in flight): still under load, so one
    // computes and one is ready, a request each.
    expect(scheduler.stats()).toMatchObject({ inFlightBatches: 2, queueDepth: 0 })
    release()
    const results = await Promise.all(answers)
    expect(sizes).toEqual([1, 1, 4, 1, 1])
    expect(results.map((r) => r.timing.batchSize)).toEqual([1, 1, 4, 4, 4, 4, 1, 1])
    expect(results.map((r) => (r.outputs[0].data as Float32Array)[0])).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
  })

  it('without queueAhead waits for the running batch before dispatching even a full one', async () => {
    const { scheduler, sizes, release } = gated(false)
    const answers = [0, 1, 2, 3, 4].map((v) => scheduler.enqueue(request(v)))
    expect(scheduler.stats()).toMatchObject({ inFlightBatches: 1, queueDepth: 4 })
    release()
    await answers[0]
    release()
    await Promise.all(answers)
    expect(sizes).toEqual([1, 4])
  })
})

describe('batching under concurrent load (model service, worker-thread default)', () => {
  it('keeps the instances fed with batches up to max_batch_size when many requests arrive at once', async () => {
    const { dir, cleanup } = await tempDir()
    await addToRepository(dir, 'add', addModel(), { config: { max_batch_size: 8, max_queue_delay_ms: 1000 } })
    const service = await createModelService({ repositoryDir: dir, defaultDevice: 'cpu' })
    try {
      const results = await Promise.all(
        Array.from({ length: 64 }, (_, i) =>
          service.infer({
            model: 'add',
            inputs: [f32('a', [1, 4], [i, i, i, i]), f32('b', [1, 4], [i, 0, 0, 0])],
          }),
        ),
      )
      // Cut so each instance has one batch computing and one ready, never above the cap, and none
      // waited for the 1 s delay.
      expect(results.every((r) => r.timing.batchSize <= 8)).toBe(true)
      expect(Math.max(...results.map((r) => r.timing.batchSize))).toBeGreaterThan(1)
      expect(Math.max(...results.map((r) => r.timing.queueMs))).toBeLessThan(1000)
      expect(results.map((r) => Array.from(r.outputs[0].data as Float32Array))).toEqual(
        Array.from({ length: 64 }, (_, i) => [2 * i, i, i, i]),
      )
    } finally {
      await service.close()
      await cleanup()
    }
  })
})
