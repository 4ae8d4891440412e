import ort from 'onnxruntime-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Datatype } from '../../../src/core/infer/types.js'
import { CLS_MODEL_PATH, IDENTITY_DATATYPES } from '../../helpers/onnx-models.js'
import { binaryBody, splitBinaryResponse, type TestApp, testApp } from '../app/fixtures.js'

const BODY_LIMIT = 8 * 1024 * 1024
let t: TestApp
beforeAll(async () => {
  t = await testApp({ bodyLimit: BODY_LIMIT })
})
afterAll(async () => t?.close())

const infer = (model: string, payload: unknown, url = `/v2/models/${model}/infer`) =>
  t.app.inject({ method: 'POST', url, payload: payload as object })

const binaryInfer = (model: string, header: unknown, ...tensors: ArrayBufferView[]) => {
  const { body, headerLength } = binaryBody(header, ...tensors)
  return t.app.inject({
    method: 'POST',
    url: `/v2/models/${model}/infer`,
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(headerLength),
    },
    payload: body,
  })
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length)
  let max = 0
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]))
  return max
}

/** A daemon that keeps answering: called after every error case. */
async function stillServing() {
  const res = await infer('add', {
    inputs: [
      { name: 'a', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] },
      { name: 'b', datatype: 'FP32', shape: [1, 4], data: [0, 0, 0, 1] },
    ],
  })
  expect(res.statusCode).toBe(200)
  expect(res.json().outputs[0].data).toEqual([1, 2, 3, 5])
}

describe('the real PP-OCR cls model', () => {
  const shape = [2, 3, 48, 192]
  const input = new Float32Array(shape.reduce((a, b) => a * b, 1)).map((_, i) => Math.sin(i) * 0.5)
  let expected: Float32Array

  beforeAll(async () => {
    const session = await ort.InferenceSession.create(CLS_MODEL_PATH)
    const out = await session.run({ x: new ort.Tensor('float32', input, shape) })
    expected = out['softmax_0.tmp_0'].data as Float32Array
    await session.release()
  })

  it('answers through JSON exactly as onnxruntime-node does directly', async () => {
    const res = await infer('cls', {
      id: 'cls-json',
      inputs: [{ name: 'x', datatype: 'FP32', shape, data: Array.from(input) }],
    })
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expect(body).toMatchObject({ model_name: 'cls', model_version: '1', id: 'cls-json' })
    expect(body.outputs[0]).toMatchObject({ name: 'softmax_0.tmp_0', datatype: 'FP32', shape: [2, 2] })
    expect(maxAbsDiff(body.outputs[0].data, expected)).toBeLessThanOrEqual(1e-5)
  })

  it('answers through the binary extension exactly as onnxruntime-node does directly', async () => {
    const res = await binaryInfer(
      'cls',
      {
        inputs: [{ name: 'x', datatype: 'FP32', shape, parameters: { binary_data_size: input.byteLength } }],
        parameters: { binary_data_output: true },
      },
      input,
    )
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toBe('application/octet-stream')
    const { header, tail } = splitBinaryResponse(
      res.rawPayload,
      Number(res.headers['inference-header-content-length']),
    )
    expect(header.outputs[0]).toEqual({
      name: 'softmax_0.tmp_0',
      datatype: 'FP32',
      shape: [2, 2],
      parameters: { binary_data_size: 16 },
    })
    const got = new Float32Array(tail.buffer.slice(tail.byteOffset, tail.byteOffset + tail.byteLength))
    expect(maxAbsDiff(got, expected)).toBeLessThanOrEqual(1e-5)
  })

  it('answers concurrent binary requests each with its own result, wave after wave (pooled bodies)', async () => {
    const item = [1, 3, 48, 192]
    const count = item.reduce((a, b) => a * b, 1)
    const inputs = Array.from({ length: 6 }, (_, k) =>
      new Float32Array(count).map((_, i) => Math.cos(i * (k + 1)) * 0.5),
    )
    const session = await ort.InferenceSession.create(CLS_MODEL_PATH)
    const direct: Float32Array[] = []
    for (const data of inputs) {
      direct.push(
        (await session.run({ x: new ort.Tensor('float32', data, item) }))['softmax_0.tmp_0']
          .data as Float32Array,
      )
    }
    await session.release()
    // The second wave's bodies land in memory the first wave gave back: answers must not mix.
    for (const order of [inputs.map((_, k) => k), inputs.map((_, k) => inputs.length - 1 - k)]) {
      const answers = await Promise.all(
        order.map((k) =>
          binaryInfer(
            'cls',
            {
              inputs: [
                { name: 'x', datatype: 'FP32', shape: item, parameters: { binary_data_size: count * 4 } },
              ],
              parameters: { binary_data_output: true },
            },
            inputs[k],
          ),
        ),
      )
      answers.forEach((res, i) => {
        expect(res.statusCode).toBe(200)
        const { tail } = splitBinaryResponse(
          res.rawPayload,
          Number(res.headers['inference-header-content-length']),
        )
        const got = new Float32Array(tail.buffer.slice(tail.byteOffset, tail.byteOffset + tail.byteLength))
        expect(maxAbsDiff(got, direct[order[i]])).toBeLessThanOrEqual(1e-5)
      })
    }
  })

  it('sends Server-Timing with queue and compute durations and the batch size', async () => {
    const res = await infer('cls', {
      inputs: [{ name: 'x', datatype: 'FP32', shape, data: Array.from(input) }],
    })
    expect(res.headers['server-timing']).toMatch(
      new RegExp(`^queue;dur=\\d+\\.\\d{3}, compute;dur=\\d+\\.\\d{3}, batch;desc=${shape[0]}$`),
    )
  })
})

const SAMPLES: Record<Datatype, unknown[]> = {
  BOOL: [true, false, true],
  UINT8: [0, 200, 255],
  UINT16: [0, 1000, 65535],
  UINT32: [0, 1, 4294967295],
  UINT64: [0, 1, '18446744073709551615'],
  INT8: [-128, 0, 127],
  INT16: [-32768, 5, 32767],
  INT32: [-2147483648, 7, 2147483647],
  INT64: ['-9223372036854775808', 7, '9223372036854775807'],
  FP16: [0.5, -2, 'Infinity'],
  BF16: [],
  FP32: [0.25, 'NaN', '-Infinity'],
  FP64: [0.1, -1e300, 'Infinity'],
  BYTES: ['héllo', '', 'wörld'],
}

describe('every datatype through an identity model', () => {
  it.each(IDENTITY_DATATYPES)('%s round-trips through JSON', async (datatype) => {
    const data = SAMPLES[datatype]
    const res = await infer(`id_${datatype.toLowerCase()}`, {
      inputs: [{ name: 'input', datatype, shape: [1, 3], data }],
    })
    expect(res.statusCode).toBe(200)
    const output = res.json().outputs[0]
    expect(output.datatype).toBe(datatype)
    expect(output.shape).toEqual([1, 3])
    // Exact text for 64-bit integers: JSON.parse would round them.
    if (datatype === 'INT64' || datatype === 'UINT64') {
      expect(res.body).toContain(`"data":[${data.join(',')}]`)
    } else {
      expect(output.data).toEqual(data)
    }
  })

  it.each(IDENTITY_DATATYPES)('%s round-trips through the binary extension', async (datatype) => {
    const res = await infer(`id_${datatype.toLowerCase()}`, {
      inputs: [{ name: 'input', datatype, shape: [1, 3], data: SAMPLES[datatype] }],
      outputs: [{ name: 'output', parameters: { binary_data: true } }],
    })
    expect(res.statusCode).toBe(200)
    const { header, tail } = splitBinaryResponse(
      res.rawPayload,
      Number(res.headers['inference-header-content-length']),
    )
    // Feed the binary output back as a binary input: it must come back byte-identical.
    const again = await binaryInfer(
      `id_${datatype.toLowerCase()}`,
      {
        inputs: [{ name: 'input', datatype, shape: [1, 3], parameters: { binary_data_size: tail.length } }],
        parameters: { binary_data_output: true },
      },
      tail,
    )
    expect(again.statusCode).toBe(200)
    const second = splitBinaryResponse(
      again.rawPayload,
      Number(again.headers['inference-header-content-length']),
    )
    expect(second.header.outputs[0].parameters.binary_data_size).toBe(
      header.outputs[0].parameters.binary_data_size,
    )
    expect(Buffer.compare(second.tail, tail)).toBe(0)
  })
})

describe('models with several inputs and outputs', () => {
  it('runs int64 and scalar inputs and selects outputs', async () => {
    const res = await infer('multi', {
      inputs: [
        {
          name: 'x',
          datatype: 'FP32',
          shape: [2, 3],
          data: [
            [1, 2, 3],
            [4, 5, 6],
          ],
        },
        { name: 'ids', datatype: 'INT64', shape: [2, 2], data: [1, 2, '9007199254740993', 4] },
        { name: 'scale', datatype: 'FP32', shape: [], data: [0.5] },
      ],
      outputs: [{ name: 'next_ids' }, { name: 'scaled' }],
    })
    expect(res.statusCode).toBe(200)
    const outputs = res.json().outputs
    expect(outputs.map((o: { name: string }) => o.name)).toEqual(['next_ids', 'scaled'])
    expect(res.body).toContain('"data":[2,3,9007199254740994,5]')
    expect(outputs[1].data).toEqual([0.5, 1, 1.5, 2, 2.5, 3])
  })

  it('returns only the outputs asked for, mixing JSON and binary', async () => {
    const res = await infer('multi', {
      inputs: [
        { name: 'x', datatype: 'FP32', shape: [1, 3], data: [1, 2, 3] },
        { name: 'ids', datatype: 'INT64', shape: [1, 2], data: [1, 2] },
        { name: 'scale', datatype: 'FP32', shape: [], data: [2] },
      ],
      outputs: [{ name: 'scaled', parameters: { binary_data: true } }],
    })
    const { header, tail } = splitBinaryResponse(
      res.rawPayload,
      Number(res.headers['inference-header-content-length']),
    )
    expect(header.outputs.map((o: { name: string }) => o.name)).toEqual(['scaled'])
    expect([...new Float32Array(tail.buffer.slice(tail.byteOffset, tail.byteOffset + 12))]).toEqual([2, 4, 6])
  })

  it('carries a recurrent state tensor from one call into the next', async () => {
    let state = [0, 0, 0, 0]
    for (let step = 1; step <= 3; step++) {
      const res = await infer('recurrent', {
        inputs: [
          { name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 1, 1, 1] },
          { name: 'state', datatype: 'FP32', shape: [1, 4], data: state },
        ],
      })
      const outputs = Object.fromEntries(
        res.json().outputs.map((o: { name: string; data: number[] }) => [o.name, o.data]),
      )
      expect(outputs.new_state).toEqual([step, step, step, step])
      expect(outputs.output[0]).toBeCloseTo(Math.tanh(step), 6)
      state = outputs.new_state
    }
  })

  it('reports the version that answered', async () => {
    const x = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 1, 1, 1] }] }
    const v1 = await infer('scale', x, '/v2/models/scale/versions/1/infer')
    expect(v1.json()).toMatchObject({ model_version: '1', outputs: [{ data: [2, 2, 2, 2] }] })
    const latest = await infer('scale', x)
    expect(latest.json()).toMatchObject({ model_version: '2', outputs: [{ data: [3, 3, 3, 3] }] })
  })
})

describe('bad input gets a clear 4xx and the daemon keeps serving', () => {
  const cases: [string, unknown, number, RegExp][] = [
    [
      'wrong element count',
      { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2] }] },
      400,
      /holds 4 elements but data has 2/,
    ],
    [
      'wrong shape for the model',
      { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 5], data: [1, 2, 3, 4, 5] }] },
      400,
      /shape/,
    ],
    [
      'wrong datatype for the model',
      { inputs: [{ name: 'x', datatype: 'INT32', shape: [1, 4], data: [1, 2, 3, 4] }] },
      400,
      /INT32|datatype/,
    ],
    [
      'unknown datatype',
      { inputs: [{ name: 'x', datatype: 'FP8', shape: [1], data: [1] }] },
      400,
      /datatype must be equal to one of the allowed values \(BOOL, /,
    ],
    [
      'missing input',
      { inputs: [{ name: 'a', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] },
      400,
      /b/,
    ],
    ['no inputs at all', { inputs: [] }, 400, /inputs must NOT have fewer than 1 items/],
    [
      'a value of the wrong type',
      { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 'three', 4] }] },
      400,
      /element 2 is "three"/,
    ],
    [
      'unknown output',
      {
        inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }],
        outputs: [{ name: 'nope' }],
      },
      400,
      /nope/,
    ],
  ]
  it.each(cases)('%s', async (_label, payload, status, message) => {
    const model = (payload as { inputs: { name: string }[] }).inputs[0]?.name === 'a' ? 'add' : 'scale'
    const res = await infer(model, payload, `/v2/models/${model}/versions/1/infer`)
    expect(res.statusCode).toBe(status)
    expect(Object.keys(res.json())).toEqual(['error'])
    expect(res.json().error).toMatch(message)
    await stillServing()
  })

  it('malformed JSON is a 400 naming the problem', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v2/models/add/infer',
      headers: { 'content-type': 'application/json' },
      payload: '{"inputs": [',
    })
    expect(res.statusCode).toBe(400)
    expect(res.json().error).toMatch(/^Malformed JSON body: /)
    await stillServing()
  })

  it('prototype-poisoning keys are refused', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v2/models/add/infer',
      headers: { 'content-type': 'application/json' },
      payload: '{"inputs": [], "__proto__": {"polluted": true}}',
    })
    expect(res.statusCode).toBe(400)
    expect(res.json().error).toMatch(/__proto__/)
    await stillServing()
  })

  it('an oversized body is a 413 naming the limit', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v2/models/add/infer',
      headers: { 'content-type': 'application/json' },
      payload: Buffer.alloc(BODY_LIMIT + 1, 32),
    })
    expect(res.statusCode).toBe(413)
    expect(res.json()).toEqual({ error: `Request body is larger than the ${BODY_LIMIT}-byte limit.` })
    await stillServing()
  })

  it('an unsupported content type is a 415', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v2/models/add/infer',
      headers: { 'content-type': 'text/plain' },
      payload: 'hi',
    })
    expect(res.statusCode).toBe(415)
    expect(res.json().error).toMatch(/Unsupported Content-Type 'text\/plain'/)
    await stillServing()
  })

  it('binary requests whose sizes do not add up are a 400', async () => {
    const tooShort = await binaryInfer(
      'add',
      {
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } },
          { name: 'b', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } },
        ],
      },
      new Float32Array(4),
    )
    expect(tooShort.statusCode).toBe(400)
    expect(tooShort.json().error).toMatch(/runs past the end of the binary data \(0 bytes left/)
    const badHeader = await t.app.inject({
      method: 'POST',
      url: '/v2/models/add/infer',
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': '999' },
      payload: Buffer.from('{}'),
    })
    expect(badHeader.statusCode).toBe(400)
    expect(badHeader.json().error).toMatch(/is 999 but the body has only 2 bytes/)
    const notANumber = await t.app.inject({
      method: 'POST',
      url: '/v2/models/add/infer',
      headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': 'x' },
      payload: Buffer.from('{}'),
    })
    expect(notANumber.statusCode).toBe(400)
    await stillServing()
  })

  it('accepts the binary extension under application/json and any other type when the header is present', async () => {
    const a = new Float32Array([1, 2, 3, 4])
    const { body, headerLength } = binaryBody(
      {
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [1, 4], parameters: { binary_data_size: 16 } },
          { name: 'b', datatype: 'FP32', shape: [1, 4], data: [1, 1, 1, 1] },
        ],
      },
      a,
    )
    for (const type of ['application/json', 'application/vnd.custom']) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v2/models/add/infer',
        headers: { 'content-type': type, 'inference-header-content-length': String(headerLength) },
        payload: body,
      })
      expect(res.statusCode).toBe(200)
      expect(res.json().outputs[0].data).toEqual([2, 3, 4, 5])
    }
  })

  it('reads an octet-stream body without the header as all JSON', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v2/models/add/infer',
      headers: { 'content-type': 'application/octet-stream' },
      payload: Buffer.from(
        JSON.stringify({
          inputs: [
            { name: 'a', datatype: 'FP32', shape: [1, 4], data: [0, 0, 0, 0] },
            { name: 'b', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] },
          ],
        }),
      ),
    })
    expect(res.statusCode).toBe(200)
    expect(res.json().outputs[0].data).toEqual([1, 2, 3, 4])
  })

  it('an unknown model is a 404', async () => {
    const res = await infer('nope', { inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] })
    expect(res.statusCode).toBe(404)
  })

  it('a full queue is a 429 with Retry-After', async () => {
    const x = new Float32Array(64 * 256).fill(1)
    const request = () =>
      binaryInfer(
        'slow',
        {
          inputs: [
            { name: 'x', datatype: 'FP32', shape: [64, 256], parameters: { binary_data_size: x.byteLength } },
          ],
        },
        x,
      )
    const answers = await Promise.all(Array.from({ length: 6 }, request))
    const refused = answers.filter((r) => r.statusCode === 429)
    expect(refused.length).toBeGreaterThan(0)
    expect(refused[0].headers['retry-after']).toMatch(/^[1-9]\d*$/)
    expect(refused[0].json().error).toMatch(/queue/i)
    expect(answers.some((r) => r.statusCode === 200)).toBe(true)
    await stillServing()
  })
})
