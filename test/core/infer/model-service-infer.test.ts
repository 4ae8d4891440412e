import { readFile } from 'node:fs/promises'
import * as ort from 'onnxruntime-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createModelService, type HelixModelService } from '../../../src/core/infer/model-service.js'
import type { Datatype, Tensor } from '../../../src/core/infer/types.js'
import { tempDir } from '../../helpers/cli.js'
import {
  addModel,
  addToRepository,
  CLS_MODEL_PATH,
  fixedShapeModel,
  IDENTITY_DATATYPES,
  identityModel,
  multiIoModel,
  recurrentModel,
} from '../../helpers/onnx-models.js'
import { f32, maxAbsDiff, rejection, seededFloats } from './service-helpers.js'

function clsInput(batch: number, seed: number, width = 192): Tensor {
  return {
    name: 'x',
    datatype: 'FP32',
    shape: [batch, 3, 48, width],
    data: seededFloats(batch * 3 * 48 * width, seed),
  }
}

describe('inference through the model service', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let service: HelixModelService
  let direct: ort.InferenceSession

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    const cls = new Uint8Array(await readFile(CLS_MODEL_PATH))
    // A long delay makes gathering deterministic: concurrent requests always meet in one batch.
    await addToRepository(dir, 'cls', cls, { config: { max_batch_size: 16, max_queue_delay_ms: 50 } })
    await addToRepository(dir, 'cls_solo', cls, { config: { max_batch_size: 0 } })
    // On the event loop there is no queue-ahead: a burst waits for max_queue_delay_ms and gathers.
    await addToRepository(dir, 'cls_inline', cls, {
      config: { max_batch_size: 16, max_queue_delay_ms: 50, worker_threads: false },
    })
    await addToRepository(dir, 'preferred', cls, {
      config: { max_batch_size: 8, max_queue_delay_ms: 5000, preferred_batch_sizes: [4] },
    })
    await addToRepository(dir, 'add', addModel(), {
      config: { max_batch_size: 4, max_queue_delay_ms: 20, instances: 2 },
    })
    await addToRepository(dir, 'multi', multiIoModel())
    await addToRepository(dir, 'recurrent', recurrentModel())
    await addToRepository(dir, 'recurrent_batched', recurrentModel(), { config: { max_queue_delay_ms: 50 } })
    await addToRepository(dir, 'fixed', fixedShapeModel())
    for (const datatype of IDENTITY_DATATYPES)
      await addToRepository(dir, `id_${datatype.toLowerCase()}`, identityModel(datatype))
    service = await createModelService({ repositoryDir: dir, defaultDevice: 'cpu' })
    direct = await ort.InferenceSession.create(CLS_MODEL_PATH)
  })
  afterAll(async () => {
    await service.close()
    await direct.release()
    await cleanup()
  })

  it('batched cls outputs equal unbatched onnxruntime outputs (max abs diff <= 1e-5)', async () => {
    const sizes = [1, 2, 1, 3, 1, 1, 2, 1]
    const inputs = sizes.map((b, i) => clsInput(b, i + 1))
    let results: Awaited<ReturnType<typeof service.infer>>[] = []
    for (const model of ['cls_inline', 'cls']) {
      results = await Promise.all(inputs.map((x) => service.infer({ model, inputs: [x] })))
      // Inline: the burst gathers into one batch of 12 rows. Worker threads cut it into several
      // multi-row batches for their two instances.
      if (model === 'cls_inline') expect(results.every((r) => r.timing.batchSize === 12)).toBe(true)
      else expect(Math.max(...results.map((r) => r.timing.batchSize))).toBeGreaterThan(1)
      for (const [i, x] of inputs.entries()) {
        const expected = await direct.run({ x: new ort.Tensor('float32', x.data as Float32Array, x.shape) })
        const out = results[i].outputs[0]
        expect(out.name).toBe('softmax_0.tmp_0')
        expect(out.shape).toEqual([sizes[i], 2])
        expect(
          maxAbsDiff(out.data as Float32Array, expected['softmax_0.tmp_0'].data as Float32Array),
        ).toBeLessThanOrEqual(1e-5)
      }
    }
    const solo = await service.infer({ model: 'cls_solo', inputs: [inputs[3]] })
    expect(solo.timing.batchSize).toBe(3)
    expect(
      maxAbsDiff(solo.outputs[0].data as Float32Array, results[3].outputs[0].data as Float32Array),
    ).toBeLessThanOrEqual(1e-5)
  })

  it('never mixes requests of different shapes into one batch', async () => {
    const widths = [192, 160, 192, 160, 96, 192]
    const inputs = widths.map((w, i) => clsInput(1, 100 + i, w))
    const count = (w: number) => widths.filter((v) => v === w).length
    for (const model of ['cls_inline', 'cls']) {
      const results = await Promise.all(inputs.map((x) => service.infer({ model, inputs: [x] })))
      for (const [i, r] of results.entries()) {
        // Gathered by shape: every request of a shape in one batch (inline), or in batches no
        // larger than that shape's count (worker threads cut a burst for their two instances).
        if (model === 'cls_inline') expect(r.timing.batchSize, model).toBe(count(widths[i]))
        else expect(r.timing.batchSize, model).toBeLessThanOrEqual(count(widths[i]))
      }
      for (const [i, x] of inputs.entries()) {
        const expected = await direct.run({ x: new ort.Tensor('float32', x.data as Float32Array, x.shape) })
        expect(
          maxAbsDiff(
            results[i].outputs[0].data as Float32Array,
            expected['softmax_0.tmp_0'].data as Float32Array,
          ),
        ).toBeLessThanOrEqual(1e-5)
      }
    }
  })

  it('dispatches at a preferred batch size without waiting for the delay', async () => {
    const started = performance.now()
    const results = await Promise.all(
      [1, 2, 3, 4].map((s) => service.infer({ model: 'preferred', inputs: [clsInput(1, s)] })),
    )
    expect(results.map((r) => r.timing.batchSize)).toEqual([4, 4, 4, 4])
    expect(performance.now() - started).toBeLessThan(4000)
  })

  it('caps batches at max_batch_size and runs batches on several instances', async () => {
    const requests = Array.from({ length: 10 }, (_, i) =>
      service.infer({
        model: 'add',
        inputs: [f32('a', [1, 4], [i, i, i, i]), f32('b', [1, 4], [1, 1, 1, 1])],
      }),
    )
    const results = await Promise.all(requests)
    for (const [i, r] of results.entries()) {
      expect(Array.from(r.outputs[0].data as Float32Array)).toEqual([i + 1, i + 1, i + 1, i + 1])
    }
    // A burst of 10 on two instances: cut so each has a batch computing and one ready, never
    // above the cap; at least three batches, spread over both instances.
    expect(Math.max(...results.map((r) => r.timing.batchSize))).toBeLessThanOrEqual(4)
    const batches = results.reduce((n, r) => n + 1 / r.timing.batchSize, 0)
    expect(batches).toBeGreaterThanOrEqual(3 - 1e-9)
    expect(batches).toBeLessThanOrEqual(10 + 1e-9)
    expect(
      (
        await rejection(
          service.infer({
            model: 'add',
            inputs: [f32('a', [5, 4], new Array(20).fill(0)), f32('b', [5, 4], new Array(20).fill(0))],
          }),
        )
      ).message,
    ).toBe("A batch of 5 exceeds max_batch_size 4 of model 'add'.")
  })

  it('serves several inputs and outputs with INT64 and a scalar, one request at a time', async () => {
    const run = (k: number) =>
      service.infer({
        model: 'multi',
        inputs: [
          f32('scale', [], [k]),
          {
            name: 'ids',
            datatype: 'INT64',
            shape: [2, 2],
            data: BigInt64Array.from([1n, 2n, 3n, -(2n ** 62n)]),
          },
          f32('x', [2, 3], [1, 2, 3, 4, 5, 6]),
        ],
      })
    const [two, three] = await Promise.all([run(2), run(3)])
    expect(two.outputs).toEqual([
      f32('scaled', [2, 3], [2, 4, 6, 8, 10, 12]),
      {
        name: 'next_ids',
        datatype: 'INT64',
        shape: [2, 2],
        data: BigInt64Array.from([2n, 3n, 4n, -(2n ** 62n) + 1n]),
      },
    ])
    expect(three.outputs[0]).toEqual(f32('scaled', [2, 3], [3, 6, 9, 12, 15, 18]))
    expect([two.timing.batchSize, three.timing.batchSize]).toEqual([1, 1])
  })

  it('returns the outputs asked for, in the order asked', async () => {
    const result = await service.infer({
      model: 'multi',
      outputs: ['next_ids', 'scaled'],
      inputs: [
        f32('x', [1, 3], [1, 1, 1]),
        { name: 'ids', datatype: 'INT64', shape: [1, 2], data: BigInt64Array.from([0n, 0n]) },
        f32('scale', [], [1]),
      ],
    })
    expect(result.outputs.map((o) => o.name)).toEqual(['next_ids', 'scaled'])
    const all = await service.infer({
      model: 'multi',
      outputs: [],
      inputs: [
        f32('x', [1, 3], [1, 1, 1]),
        { name: 'ids', datatype: 'INT64', shape: [1, 2], data: BigInt64Array.from([0n, 0n]) },
        f32('scale', [], [1]),
      ],
    })
    expect(all.outputs.map((o) => o.name)).toEqual(['scaled', 'next_ids'])
    const one = await service.infer({
      model: 'add',
      outputs: ['sum'],
      inputs: [f32('a', [1, 4], [0, 0, 0, 0]), f32('b', [1, 4], [0, 0, 0, 0])],
    })
    expect(one.outputs.map((o) => o.name)).toEqual(['sum'])
  })

  it('gives each request of a batch only the outputs it asked for', async () => {
    const x = f32('x', [1, 4], [1, 2, 3, 4])
    const state = f32('state', [1, 4], [0, 0, 0, 0])
    const [a, b, c] = await Promise.all([
      service.infer({ model: 'recurrent_batched', inputs: [x, state], outputs: ['output'] }),
      service.infer({ model: 'recurrent_batched', inputs: [x, state], outputs: ['new_state'] }),
      service.infer({ model: 'recurrent_batched', inputs: [x, state] }),
    ])
    expect([a, b, c].map((r) => r.timing.batchSize)).toEqual([3, 3, 3])
    expect(a.outputs.map((o) => o.name)).toEqual(['output'])
    expect(b.outputs).toEqual([f32('new_state', [1, 4], [1, 2, 3, 4])])
    expect(c.outputs.map((o) => o.name)).toEqual(['output', 'new_state'])
    const [d, e] = await Promise.all([
      service.infer({ model: 'recurrent_batched', inputs: [x, state], outputs: ['output'] }),
      service.infer({ model: 'recurrent_batched', inputs: [x, state], outputs: ['new_state'] }),
    ])
    expect([d.outputs.map((o) => o.name), e.outputs.map((o) => o.name), d.timing.batchSize]).toEqual([
      ['output'],
      ['new_state'],
      2,
    ])
  })

  it('carries a recurrent state across calls', async () => {
    let state = f32('state', [1, 4], [0, 0, 0, 0])
    const x = f32('x', [1, 4], [0.1, 0.2, 0.3, 0.4])
    for (let step = 1; step <= 3; step++) {
      const result = await service.infer({ model: 'recurrent', inputs: [x, state] })
      const next = result.outputs.find((o) => o.name === 'new_state') as Tensor
      const output = result.outputs.find((o) => o.name === 'output') as Tensor
      expect(
        maxAbsDiff(
          next.data as Float32Array,
          [0.1, 0.2, 0.3, 0.4].map((v) => v * step),
        ),
      ).toBeLessThan(1e-6)
      expect(
        maxAbsDiff(
          output.data as Float32Array,
          [0.1, 0.2, 0.3, 0.4].map((v) => Math.tanh(v * step)),
        ),
      ).toBeLessThan(1e-6)
      state = { ...next, name: 'state' }
    }
  })

  it.each(IDENTITY_DATATYPES)('round-trips %s tensors, batched', async (datatype: Datatype) => {
    const data = (seed: number): Tensor['data'] => {
      switch (datatype) {
        case 'BYTES':
          return ['a', 'βγ', `${seed}`].map((s) => new TextEncoder().encode(s))
        case 'INT64':
          return BigInt64Array.from([-(2n ** 63n), BigInt(seed), 2n ** 63n - 1n])
        case 'UINT64':
          return BigUint64Array.from([0n, BigInt(seed), 2n ** 64n - 1n])
        case 'BOOL':
          return Uint8Array.from([1, 0, seed % 2])
        case 'FP16':
          return Uint16Array.from([0x3c00, 0x7bff, seed])
        default: {
          const Ctor = {
            UINT8: Uint8Array,
            INT8: Int8Array,
            UINT16: Uint16Array,
            INT16: Int16Array,
            UINT32: Uint32Array,
            INT32: Int32Array,
            FP32: Float32Array,
            FP64: Float64Array,
          }[datatype as 'UINT8']
          return Ctor.from([1, 2, seed])
        }
      }
    }
    const tensors = [1, 2, 3].map((seed) => ({ name: 'input', datatype, shape: [1, 3], data: data(seed) }))
    const results = await Promise.all(
      tensors.map((t) => service.infer({ model: `id_${datatype.toLowerCase()}`, inputs: [t] })),
    )
    for (const [i, r] of results.entries()) expect(r.outputs).toEqual([{ ...tensors[i], name: 'output' }])
  })

  it('runs a model with a fixed first dimension as it is', async () => {
    const result = await service.infer({
      model: 'fixed',
      inputs: [f32('x', [2, 4], [-1, 2, -3, 4, 5, -6, 7, -8])],
    })
    expect(result.outputs[0]).toEqual(f32('y', [2, 4], [0, 2, 0, 4, 5, 0, 7, 0]))
    expect(
      (await rejection(service.infer({ model: 'fixed', inputs: [f32('x', [1, 4], [1, 2, 3, 4])] }))).message,
    ).toBe("Input 'x' has shape [1,4]; the model expects [2,4] (-1 = any size).")
  })

  it('refuses bad inputs with a precise INVALID_INPUT message', async () => {
    const a = f32('a', [1, 4], [1, 2, 3, 4])
    const b = f32('b', [1, 4], [1, 2, 3, 4])
    const cases: [Tensor[], string, string[]?][] = [
      [[a], "Missing input 'b' for model 'add'."],
      [[a, b, f32('c', [1], [1])], "Model 'add' has no input 'c'; its inputs are 'a', 'b'."],
      [[a, a], "Input 'a' is given twice."],
      [
        [a, { ...b, datatype: 'FP64', data: Float64Array.from([1, 2, 3, 4]) }],
        "Input 'b' has datatype FP64; the model expects FP32.",
      ],
      [
        [a, f32('b', [1, 5], [1, 2, 3, 4, 5])],
        "Input 'b' has shape [1,5]; the model expects [-1,4] (-1 = any size).",
      ],
      [
        [a, f32('b', [4], [1, 2, 3, 4])],
        "Input 'b' has shape [4]; the model expects [-1,4] (-1 = any size).",
      ],
      [[a, { ...b, shape: [1, -4] }], "Input 'b': shape must be a list of non-negative integers."],
      [[a, f32('b', [1, 4], [1, 2, 3])], "Input 'b' has 3 elements, but shape [1,4] needs 4."],
      [
        [a, { ...b, data: Int32Array.from([1, 2, 3, 4]) }],
        "Input 'b': the data is not in the representation of FP32.",
      ],
      [
        [a, f32('b', [2, 4], new Array(8).fill(0))],
        "Inputs disagree on the batch size (dim 0): 'a' has 1, 'b' has 2.",
      ],
      [[f32('a', [0, 4], []), f32('b', [0, 4], [])], "The batch (dim 0) of the inputs of 'add' is empty."],
      [[a, b], "Model 'add' has no output 'nope'; its outputs are 'sum'.", ['nope']],
    ]
    for (const [inputs, message, outputs] of cases) {
      const error = await rejection(service.infer({ model: 'add', inputs, outputs }))
      expect({ code: error.code, message: error.message }).toEqual({ code: 'INVALID_INPUT', message })
    }
  })
})
