import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { QueueFullError } from '../../../src/core/infer/errors.js'
import { createModelService, type HelixModelService } from '../../../src/core/infer/model-service.js'
import { tempDir } from '../../helpers/cli.js'
import { addModel, addToRepository, matmulChainModel } from '../../helpers/onnx-models.js'
import { f32, rejection } from './service-helpers.js'

const addInputs = (v: number) => [f32('a', [1, 4], [v, v, v, v]), f32('b', [1, 4], [0, 0, 0, 0])]

describe('backpressure, deadlines and cancellation', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let service: HelixModelService

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    await addToRepository(dir, 'small_queue', addModel(), {
      config: { max_batch_size: 0, queue: { max_size: 2 } },
    })
    await addToRepository(dir, 'slow_gather', addModel(), {
      config: { max_batch_size: 8, max_queue_delay_ms: 400 },
    })
    await addToRepository(dir, 'deadline', addModel(), {
      config: { max_batch_size: 8, max_queue_delay_ms: 400, queue: { timeout_ms: 60 } },
    })
    await addToRepository(dir, 'heavy', matmulChainModel(512, 24), { config: { max_batch_size: 0 } })
    service = await createModelService({ repositoryDir: dir, defaultDevice: 'cpu' })
  })
  afterAll(async () => {
    await service.close()
    await cleanup()
  })

  it('refuses requests beyond the queue with QUEUE_FULL and a Retry-After estimate', async () => {
    const attempts = Array.from({ length: 10 }, (_, i) =>
      service.infer({ model: 'small_queue', inputs: addInputs(i) }),
    )
    const settled = await Promise.allSettled(attempts)
    const ok = settled.filter((s) => s.status === 'fulfilled')
    const refused = settled
      .filter((s): s is PromiseRejectedResult => s.status === 'rejected')
      .map((s) => s.reason)
    // Two CPU instances by default: two run, two are handed to their worker threads ahead of time,
    // two wait; four are refused.
    expect(ok).toHaveLength(6)
    expect(refused).toHaveLength(4)
    for (const error of refused) {
      expect(error).toBeInstanceOf(QueueFullError)
      expect(error.code).toBe('QUEUE_FULL')
      expect(error.message).toBe("The queue of 'small_queue' version '1' is full (2 waiting).")
      expect(error.retryAfterSeconds).toBeGreaterThanOrEqual(1)
      expect(error.details).toEqual({ retryAfterSeconds: error.retryAfterSeconds })
    }
    // And the model serves normally afterwards.
    expect((await service.infer({ model: 'small_queue', inputs: addInputs(1) })).outputs[0].data).toEqual(
      Float32Array.from([1, 1, 1, 1]),
    )
  })

  it('times out a queued request at its deadline and leaves the others alone', async () => {
    const started = performance.now()
    const late = service.infer({ model: 'slow_gather', inputs: addInputs(1), timeoutMs: 50 })
    const patient = service.infer({ model: 'slow_gather', inputs: addInputs(2) })
    const error = await rejection(late)
    expect(performance.now() - started).toBeLessThan(350)
    expect({ code: error.code, message: error.message }).toEqual({
      code: 'INFER_TIMEOUT',
      message: "Inference on 'slow_gather' version '1' timed out after 50 ms (queued).",
    })
    const result = await patient
    expect(result.timing.batchSize).toBe(1)
    expect(result.timing.queueMs).toBeGreaterThanOrEqual(350)
  })

  it('applies the default deadline of queue.timeout_ms', async () => {
    const error = await rejection(service.infer({ model: 'deadline', inputs: addInputs(1) }))
    expect(error.code).toBe('INFER_TIMEOUT')
    expect(error.message).toMatch(/after 60 ms \(queued\)/)
    expect(service.index().find((r) => r.name === 'deadline')?.queueDepth).toBe(0)
  })

  it('times out a request whose deadline passes while it runs', async () => {
    const x = {
      name: 'x',
      datatype: 'FP32' as const,
      shape: [384, 512],
      data: new Float32Array(384 * 512).fill(1),
    }
    const error = await rejection(service.infer({ model: 'heavy', inputs: [x], timeoutMs: 5 }))
    expect(error.code).toBe('INFER_TIMEOUT')
    const ok = await service.infer({ model: 'heavy', inputs: [x] })
    expect((ok.outputs[0].data as Float32Array)[0]).toBeCloseTo(1, 3)
  })

  it('drops queued work when the client goes away', async () => {
    const controller = new AbortController()
    const gone = service.infer({ model: 'slow_gather', inputs: addInputs(1), signal: controller.signal })
    const stays = service.infer({ model: 'slow_gather', inputs: addInputs(2) })
    expect(service.index().find((r) => r.name === 'slow_gather')?.queueDepth).toBe(2)
    controller.abort()
    const error = await rejection(gone)
    expect({ code: error.code, message: error.message }).toEqual({
      code: 'CANCELLED',
      message: "Inference on 'slow_gather' version '1' was cancelled by the client.",
    })
    expect(service.index().find((r) => r.name === 'slow_gather')?.queueDepth).toBe(1)
    const result = await stays
    // Only the request that stayed ran.
    expect(result.timing.batchSize).toBe(1)
    expect(Array.from(result.outputs[0].data as Float32Array)).toEqual([2, 2, 2, 2])
  })

  it('refuses at once a request whose client is already gone', async () => {
    const controller = new AbortController()
    controller.abort()
    expect(
      (
        await rejection(
          service.infer({ model: 'slow_gather', inputs: addInputs(1), signal: controller.signal }),
        )
      ).code,
    ).toBe('CANCELLED')
  })

  it('answers a client that leaves during compute at once', async () => {
    const controller = new AbortController()
    const x = {
      name: 'x',
      datatype: 'FP32' as const,
      shape: [384, 512],
      data: new Float32Array(384 * 512).fill(1),
    }
    // Batching is off and the model idle, so the request is dispatched inside infer() itself.
    const pending = service.infer({ model: 'heavy', inputs: [x], signal: controller.signal })
    controller.abort()
    expect((await rejection(pending)).code).toBe('CANCELLED')
  })
})
