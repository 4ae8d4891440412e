import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OnnxBackend } from '../../../src/core/backends/onnx-backend.js'
import { invalidInput } from '../../../src/core/infer/errors.js'
import { prepareRequest } from '../../../src/core/infer/input-validation.js'
import { Scheduler, type SchedulerOptions } from '../../../src/core/infer/scheduler.js'
import type { Tensor } from '../../../src/core/infer/types.js'
import { tempDir } from '../../helpers/cli.js'
import { multiIoModel, writeOnnx } from '../../helpers/onnx-models.js'
import { f32, rejection } from './service-helpers.js'

// The scheduler on the real backend.
describe('Scheduler', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let backend: OnnxBackend
  const make = (options: Partial<SchedulerOptions> = {}) =>
    new Scheduler({
      model: 'multi',
      maxBatchSize: 8,
      maxQueueDelayMs: 20,
      maxQueueSize: 100,
      concurrency: 1,
      execute: (inputs: Tensor[], outputs?: string[]) => backend.run(inputs, outputs),
      ...options,
    })
  const signature = () => backend.describe()
  const request = (n: number, outputs?: string[]) =>
    prepareRequest(
      'multi',
      signature(),
      {
        inputs: [
          f32('x', [n, 3], new Array(n * 3).fill(n)),
          { name: 'ids', datatype: 'INT64', shape: [n, 2], data: new BigInt64Array(n * 2).fill(BigInt(n)) },
          f32('scale', [], [1]),
        ],
        outputs,
      },
      // The scalar input keeps this model unbatchable in the service; here it stands in for batch
      // inputs that share the key, so the scheduler's gathering can be watched on a real model.
      { batchable: false, maxBatchSize: 0 },
    )
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    backend = new OnnxBackend({
      modelPath: await writeOnnx(join(dir, 'm.onnx'), multiIoModel()),
      device: 'cpu',
    })
    await backend.load()
  })
  afterAll(async () => {
    await backend.dispose()
    await cleanup()
  })

  it('counts work, refuses new work once draining, and aborts what is queued', async () => {
    const scheduler = make({ maxBatchSize: 0 })
    const results = await Promise.all([scheduler.enqueue(request(1), {}), scheduler.enqueue(request(2))])
    expect(results.map((r) => r.outputs[0].shape)).toEqual([
      [1, 3],
      [2, 3],
    ])
    expect(scheduler.stats()).toEqual({ queueDepth: 0, inFlightBatches: 0, batches: 2, requests: 2 })
    await scheduler.drain()
    expect((await rejection(scheduler.enqueue(request(1)))).message).toBe(
      "Model 'multi' is not ready: it is unloading.",
    )
    const other = make({ maxQueueDelayMs: 10_000, maxBatchSize: 8 })
    const waiting = other.enqueue({ ...request(1), batchSize: 1, shapeKey: 'k' })
    other.abort('shutting down')
    expect((await rejection(waiting)).message).toBe("Model 'multi' is not ready: shutting down.")
  })

  it('computes the union of requested outputs for a batch and gives each request its own', async () => {
    const scheduler = make({ maxBatchSize: 1 })
    // With batching off, both requests still get exactly what they asked for.
    const [a, b] = await Promise.all([
      scheduler.enqueue(request(1, ['scaled'])),
      scheduler.enqueue(request(1, ['next_ids'])),
    ])
    expect(a.outputs.map((o) => o.name)).toEqual(['scaled'])
    expect(b.outputs.map((o) => o.name)).toEqual(['next_ids'])
  })

  it('passes HelixErrors from the backend through unchanged', async () => {
    const scheduler = make({
      maxBatchSize: 0,
      execute: async () => {
        throw invalidInput('the backend said no')
      },
    })
    const error = await rejection(scheduler.enqueue(request(1)))
    expect([error.code, error.message]).toEqual(['INVALID_INPUT', 'the backend said no'])
  })
})
