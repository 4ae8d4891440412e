import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OnnxBackend } from '../../../src/runtime/backends/onnx-backend.js'
import { prepareRequest } from '../../../src/runtime/infer/input-validation.js'
import { createModelService } from '../../../src/runtime/infer/model-service.js'
import { type ScheduledResult, Scheduler } from '../../../src/runtime/infer/scheduler.js'
import type { Tensor } from '../../../src/runtime/infer/types.js'
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

  it('hands over the next batch while one computes only when it is full', async () => {
    const { scheduler, sizes, release } = gated(true)
    const answers: Promise<ScheduledResult>[] = []
    answers.push(scheduler.enqueue(request(0)))
    expect(scheduler.stats().inFlightBatches).toBe(1)
    for (let v = 1; v <= 3; v++) answers.push(scheduler.enqueue(request(v)))
    // Three are due (delay 0) but an instance is busy: they wait for a fuller batch.
    expect(scheduler.stats()).toMatchObject({ inFlightBatches: 1, queueDepth: 3 })
    answers.push(scheduler.enqueue(request(4)))
    // Four make a full batch: it goes ahead at once, queued behind the running one.
    expect(scheduler.stats()).toMatchObject({ inFlightBatches: 2, queueDepth: 0 })
    answers.push(scheduler.enqueue(request(5)), scheduler.enqueue(request(6)))
    expect(scheduler.stats()).toMatchObject({ inFlightBatches: 2, queueDepth: 2 })
    release()
    const results = await Promise.all(answers.slice(0, 5))
    expect(results.map((r) => r.timing.batchSize)).toEqual([1, 4, 4, 4, 4])
    expect(results.map((r) => (r.outputs[0].data as Float32Array)[0])).toEqual([1, 2, 3, 4, 5])
    // The instance is free again: what gathered meanwhile runs as one batch.
    release()
    const rest = await Promise.all(answers.slice(5))
    expect(rest.map((r) => r.timing.batchSize)).toEqual([2, 2])
    expect(rest.map((r) => (r.outputs[0].data as Float32Array)[0])).toEqual([6, 7])
    expect(sizes).toEqual([1, 4, 2])
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
  it('forms only full batches when many requests arrive at once', async () => {
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
      // A 1 s delay could not have fired: every batch was dispatched because it was full.
      expect(results.every((r) => r.timing.batchSize === 8)).toBe(true)
      expect(results.map((r) => Array.from(r.outputs[0].data as Float32Array))).toEqual(
        Array.from({ length: 64 }, (_, i) => [2 * i, i, i, i]),
      )
    } finally {
      await service.close()
      await cleanup()
    }
  })
})
