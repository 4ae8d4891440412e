import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { decodeBinaryData, encodeBinaryData } from '../../../src/core/infer/raw-tensor.js'
import type { Datatype, InferResult, TensorData } from '../../../src/core/infer/types.js'
import { decodeInferRequest } from '../../../src/http/kserve/infer-request.js'
import { encodeInferResponse } from '../../../src/http/kserve/infer-response.js'
import { readBody } from '../../../src/http/kserve/read-body.js'
import { isHelixError } from '../../../src/shared/errors.js'

async function rejectsWith(promise: Promise<unknown> | (() => unknown), code: string, pattern: RegExp) {
  try {
    await (typeof promise === 'function' ? promise() : promise)
  } catch (err) {
    expect(isHelixError(err) && err.code).toBe(code)
    expect((err as Error).message).toMatch(pattern)
    return
  }
  throw new Error(`expected ${code}`)
}

const samples: [Datatype, TensorData][] = [
  ['BOOL', new Uint8Array([1, 0])],
  ['UINT8', new Uint8Array([1, 255])],
  ['UINT16', new Uint16Array([1, 65535])],
  ['UINT32', new Uint32Array([1, 2 ** 32 - 1])],
  ['UINT64', new BigUint64Array([1n, 2n ** 64n - 1n])],
  ['INT8', new Int8Array([-1, 127])],
  ['INT16', new Int16Array([-1, 32767])],
  ['INT32', new Int32Array([-1, 2 ** 31 - 1])],
  ['INT64', new BigInt64Array([-1n, 2n ** 63n - 1n])],
  ['FP16', new Uint16Array([0x3c00, 0x7e00])],
  ['BF16', new Uint16Array([0x3f80, 0xbf80])],
  ['FP32', new Float32Array([1.5, Number.NaN])],
  ['FP64', new Float64Array([0.1, Number.NEGATIVE_INFINITY])],
  ['BYTES', [new Uint8Array([104, 105]), new Uint8Array([])]],
]

describe('binary tensor data', () => {
  it.each(samples)('%s encodes to raw little-endian bytes and decodes back', (datatype, data) => {
    const bytes = encodeBinaryData(datatype, data)
    const decoded = decodeBinaryData('t', datatype, [2], bytes, 0, bytes.length)
    expect(decoded).toEqual(data)
  })

  it('lays BYTES out as 4-byte little-endian lengths before each element', () => {
    const bytes = encodeBinaryData('BYTES', [new Uint8Array([7, 8, 9])])
    expect([...bytes]).toEqual([3, 0, 0, 0, 7, 8, 9])
  })

  it('views aligned data without copying and copies unaligned data', () => {
    const memory = Buffer.from(new Float32Array([1, 2, 3, 0]).buffer)
    const aligned = decodeBinaryData('t', 'FP32', [2], memory, 4, 8) as Float32Array
    expect(aligned.buffer).toBe(memory.buffer)
    expect([...aligned]).toEqual([2, 3])
    const shifted = Buffer.alloc(9)
    memory.copy(shifted, 1, 0, 8)
    const copied = decodeBinaryData('t', 'FP32', [2], shifted, 1, 8) as Float32Array
    expect(copied.buffer).not.toBe(shifted.buffer)
    expect([...copied]).toEqual([1, 2])
  })

  it('refuses sizes that do not match the shape', async () => {
    await rejectsWith(
      () => decodeBinaryData('x', 'FP32', [3], Buffer.alloc(8), 0, 8),
      'INVALID_INPUT',
      /needs 12 bytes but binary_data_size is 8/,
    )
    await rejectsWith(
      () => decodeBinaryData('x', 'BYTES', [2], encodeBinaryData('BYTES', [new Uint8Array(1)]), 0, 5),
      'INVALID_INPUT',
      /holds 2 BYTES elements but the binary data has 1/,
    )
    await rejectsWith(
      () => decodeBinaryData('x', 'BYTES', [1], Buffer.from([9, 0, 0, 0, 1]), 0, 5),
      'INVALID_INPUT',
      /claims 9 bytes/,
    )
    await rejectsWith(
      () => decodeBinaryData('x', 'BYTES', [1], Buffer.from([1, 0]), 0, 2),
      'INVALID_INPUT',
      /truncated length prefix/,
    )
  })
})

describe('infer request decoding', () => {
  it('takes binary inputs in order after the JSON header and JSON inputs from data', () => {
    const a = Buffer.from(new Float32Array([1, 2]).buffer)
    const b = Buffer.from(new BigInt64Array([5n]).buffer)
    const decoded = decodeInferRequest(
      {
        id: 'r1',
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [1, 2], parameters: { binary_data_size: 8 } },
          { name: 'j', datatype: 'INT32', shape: [1], data: [4] },
          { name: 'b', datatype: 'INT64', shape: [], parameters: { binary_data_size: 8 } },
        ],
        outputs: [{ name: 'y', parameters: { binary_data: true } }, { name: 'z' }],
      },
      Buffer.concat([a, b]),
    )
    expect(decoded.id).toBe('r1')
    expect(decoded.inputs.map((t) => [t.name, Array.from(t.data as ArrayLike<unknown>)])).toEqual([
      ['a', [1, 2]],
      ['j', [4]],
      ['b', [5n]],
    ])
    expect(decoded.outputs).toEqual(['y', 'z'])
    expect(decoded.binaryOutput('y')).toBe(true)
    expect(decoded.binaryOutput('z')).toBe(false)
  })

  it('applies binary_data_output to every output unless one says otherwise', () => {
    const decoded = decodeInferRequest({
      parameters: { binary_data_output: true },
      inputs: [{ name: 'a', datatype: 'FP32', shape: [1], data: [1] }],
      outputs: [{ name: 'json', parameters: { binary_data: false } }],
    })
    expect(decoded.binaryOutput('json')).toBe(false)
    expect(decoded.binaryOutput('other')).toBe(true)
  })

  it('refuses inconsistent requests with clear messages', async () => {
    const input = { name: 'a', datatype: 'FP32' as const, shape: [1] }
    await rejectsWith(
      () => decodeInferRequest({ inputs: [input] }),
      'INVALID_INPUT',
      /neither data nor parameters.binary_data_size/,
    )
    // A name given twice decodes; the core refuses it against the model (model-service-infer.test.ts).
    expect(
      decodeInferRequest({
        inputs: [
          { ...input, data: [1] },
          { ...input, data: [1] },
        ],
      }).inputs.map((t) => t.name),
    ).toEqual([input.name, input.name])
    await rejectsWith(
      () => decodeInferRequest({ inputs: [{ ...input, datatype: 'FP8' as never, data: [1] }] }),
      'INVALID_INPUT',
      /unknown datatype 'FP8'/,
    )
    await rejectsWith(
      () => decodeInferRequest({ inputs: [{ ...input, shape: [-1], data: [1] }] }),
      'INVALID_INPUT',
      /non-negative integers/,
    )
    await rejectsWith(
      () => decodeInferRequest({ inputs: [{ ...input, parameters: { binary_data_size: 4 } }] }),
      'INVALID_INPUT',
      /runs past the end of the binary data \(0 bytes left/,
    )
    await rejectsWith(
      () => decodeInferRequest({ inputs: [{ ...input, parameters: { binary_data_size: -4 } }] }),
      'INVALID_INPUT',
      /non-negative integer/,
    )
    await rejectsWith(
      () =>
        decodeInferRequest(
          { inputs: [{ ...input, data: [1], parameters: { binary_data_size: 4 } }] },
          Buffer.alloc(4),
        ),
      'INVALID_INPUT',
      /both data and binary_data_size/,
    )
    await rejectsWith(
      () =>
        decodeInferRequest({ inputs: [{ ...input, parameters: { binary_data_size: 4 } }] }, Buffer.alloc(6)),
      'INVALID_INPUT',
      /6 bytes of binary data but .* add up to 4/,
    )
  })
})

describe('infer response encoding', () => {
  const result: InferResult = {
    modelName: 'm',
    modelVersion: '2',
    id: 'req-9',
    outputs: [
      { name: 'y', datatype: 'FP32', shape: [2], data: new Float32Array([0.5, Number.POSITIVE_INFINITY]) },
      { name: 'ids', datatype: 'INT64', shape: [1], data: new BigInt64Array([2n ** 62n + 1n]) },
      { name: 's', datatype: 'BYTES', shape: [1], data: [new Uint8Array([65])] },
    ],
    timing: { queueMs: 1, computeMs: 2, batchSize: 1 },
  }

  it('answers JSON with the version that answered, the id, and exact INT64 digits', () => {
    const { payload, headerLength } = encodeInferResponse(result, () => false)
    expect(headerLength).toBeUndefined()
    expect(payload).toContain('"data":[4611686018427387905]')
    const body = JSON.parse(payload as string)
    expect(body).toMatchObject({ model_name: 'm', model_version: '2', id: 'req-9' })
    expect(body.outputs[0]).toEqual({ name: 'y', datatype: 'FP32', shape: [2], data: [0.5, 'Infinity'] })
    expect(body.outputs[2].data).toEqual(['A'])
  })

  it('answers the outputs in the order the core gives them', () => {
    const body = JSON.parse(encodeInferResponse(result, () => false).payload as string)
    expect(body.outputs.map((o: { name: string }) => o.name)).toEqual(['y', 'ids', 's'])
  })

  it('puts binary outputs after the JSON header with their sizes', () => {
    const { payload, headerLength } = encodeInferResponse(result, (name) => name !== 'ids')
    const bytes = payload as Buffer
    const header = JSON.parse(bytes.subarray(0, headerLength).toString())
    expect(header.outputs[0]).toEqual({
      name: 'y',
      datatype: 'FP32',
      shape: [2],
      parameters: { binary_data_size: 8 },
    })
    expect(bytes.subarray(0, headerLength).toString()).toContain('"data":[4611686018427387905]')
    expect(header.outputs[2].parameters.binary_data_size).toBe(5)
    const tail = bytes.subarray(headerLength)
    expect(tail.length).toBe(13)
    expect([...new Float32Array(tail.buffer.slice(tail.byteOffset, tail.byteOffset + 8))]).toEqual([
      0.5,
      Number.POSITIVE_INFINITY,
    ])
    expect([...tail.subarray(8)]).toEqual([1, 0, 0, 0, 65])
  })
})

describe('readBody', () => {
  const stream = (chunks: Buffer[]) => {
    const s = new PassThrough()
    for (const c of chunks) s.write(c)
    s.end()
    return s
  }

  it('reads into one buffer aligned so the binary part starts on 8 bytes', async () => {
    const body = await readBody(stream([Buffer.from('abc'), Buffer.from('defgh')]), {
      contentLength: 8,
      limit: 100,
      alignAt: 3,
    })
    expect(body.toString()).toBe('abcdefgh')
    expect((body.byteOffset + 3) % 8).toBe(0)
  })

  it('reads chunked bodies without a length', async () => {
    const body = await readBody(stream([Buffer.from('ab'), Buffer.from('c')]), { limit: 100 })
    expect(body.toString()).toBe('abc')
  })

  it('refuses bodies over the limit, declared or streamed', async () => {
    await rejectsWith(
      readBody(stream([Buffer.alloc(10)]), { contentLength: 10, limit: 5 }),
      'BODY_TOO_LARGE',
      /larger than the 5-byte limit/,
    )
    await rejectsWith(
      readBody(stream([Buffer.alloc(4), Buffer.alloc(4)]), { limit: 5 }),
      'BODY_TOO_LARGE',
      /5-byte limit/,
    )
  })

  it('refuses bodies that disagree with their Content-Length', async () => {
    await rejectsWith(
      readBody(stream([Buffer.alloc(6)]), { contentLength: 4, limit: 50 }),
      'INVALID_INPUT',
      /longer than its Content-Length/,
    )
    await rejectsWith(
      readBody(stream([Buffer.alloc(2)]), { contentLength: 4, limit: 50 }),
      'INVALID_INPUT',
      /shorter than its Content-Length/,
    )
  })

  it('passes stream errors on', async () => {
    const s = new PassThrough()
    const reading = readBody(s, { limit: 50 })
    s.destroy(new Error('socket reset'))
    await expect(reading).rejects.toThrow('socket reset')
  })
})
