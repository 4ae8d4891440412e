import { describe, expect, it } from 'vitest'
import { bfloat16Bits, encodeBinaryRequest, float16Bits } from '../../../src/bench/targets/kserve-binary.js'
import { concreteShape, randomRequest } from '../../../src/bench/targets/kserve-tensors.js'

describe('encodeBinaryRequest', () => {
  it('moves each input to little-endian bytes after the JSON header and asks for binary outputs', () => {
    const { body, headers } = encodeBinaryRequest({
      inputs: [
        { name: 'f', shape: [2], datatype: 'FP32', data: [1.5, -2] },
        { name: 'i', shape: [1, 2], datatype: 'INT64', data: [[7, -1]] },
        { name: 's', shape: [1], datatype: 'BYTES', data: ['héllo'] },
        { name: 'already', shape: [1], datatype: 'UINT8', parameters: { binary_data_size: 0 } },
      ],
    })
    const headerLength = Number(headers['inference-header-content-length'])
    expect(headers['content-type']).toBe('application/octet-stream')
    const header = JSON.parse(Buffer.from(body).subarray(0, headerLength).toString())
    expect(header.parameters).toEqual({ binary_data_output: true })
    expect(
      header.inputs.map((i: { parameters: { binary_data_size: number } }) => i.parameters.binary_data_size),
    ).toEqual([8, 16, 10, 0])
    expect(header.inputs[0].data).toBeUndefined()
    const raw = Buffer.from(body).subarray(headerLength)
    expect(raw.readFloatLE(0)).toBe(1.5)
    expect(raw.readFloatLE(4)).toBe(-2)
    expect(raw.readBigInt64LE(8)).toBe(7n)
    expect(raw.readBigInt64LE(16)).toBe(-1n)
    expect(raw.readUInt32LE(24)).toBe(6)
    expect(raw.subarray(28, 34).toString()).toBe('héllo')
  })

  it('writes every fixed-size datatype with its width', () => {
    const types: [string, number, unknown][] = [
      ['BOOL', 1, true],
      ['UINT8', 1, 200],
      ['INT8', 1, -3],
      ['UINT16', 2, 60000],
      ['INT16', 2, -300],
      ['FP16', 2, 1],
      ['BF16', 2, 1],
      ['UINT32', 4, 4e9],
      ['INT32', 4, -5],
      ['UINT64', 8, 9],
      ['FP64', 8, Math.PI],
    ]
    for (const [datatype, size, value] of types) {
      const { body, headers } = encodeBinaryRequest({
        inputs: [{ name: 'x', shape: [1], datatype, data: [value] }],
      })
      const raw = Buffer.from(body).subarray(Number(headers['inference-header-content-length']))
      expect(raw.length, datatype).toBe(size)
    }
    const fp64 = encodeBinaryRequest({
      inputs: [{ name: 'x', shape: [1], datatype: 'FP64', data: [Math.PI] }],
    })
    expect(Buffer.from(fp64.body).readDoubleLE(fp64.body.length - 8)).toBe(Math.PI)
    expect(() =>
      encodeBinaryRequest({ inputs: [{ name: 'x', shape: [1], datatype: 'FP8', data: [1] }] }),
    ).toThrow(/unknown datatype FP8/)
  })

  it('converts to IEEE half and bfloat16 bits', () => {
    expect(float16Bits(1)).toBe(0x3c00)
    expect(float16Bits(-2)).toBe(0xc000)
    expect(float16Bits(65504)).toBe(0x7bff)
    expect(float16Bits(1e6)).toBe(0x7c00)
    expect(float16Bits(Number.POSITIVE_INFINITY)).toBe(0x7c00)
    expect(float16Bits(Number.NaN) & 0x7e00).toBe(0x7e00)
    expect(float16Bits(2 ** -24)).toBe(1)
    expect(float16Bits(1e-10)).toBe(0)
    expect(float16Bits(1 + 2 ** -11)).toBe(0x3c00) // a tie rounds to even
    expect(bfloat16Bits(1)).toBe(0x3f80)
    expect(bfloat16Bits(Number.NaN)).toBe(0x7fc0)
  })
})

describe('random requests from metadata', () => {
  it('fills a leading dynamic batch dimension with 1 and matches element counts', () => {
    const req = randomRequest(
      [
        { name: 'x', datatype: 'FP32', shape: [-1, 3, 4] },
        { name: 'b', datatype: 'BOOL', shape: [2] },
        { name: 't', datatype: 'BYTES', shape: [1] },
        { name: 'ids', datatype: 'INT64', shape: [-1, 5] },
      ],
      { ids: [2, 5] },
    )
    expect(req.inputs.map((i) => [i.name, i.shape, i.data?.length])).toEqual([
      ['x', [1, 3, 4], 12],
      ['b', [2], 2],
      ['t', [1], 1],
      ['ids', [2, 5], 10],
    ])
    expect(typeof req.inputs[1].data?.[0]).toBe('boolean')
    expect(typeof req.inputs[2].data?.[0]).toBe('string')
    expect(Number.isInteger(req.inputs[3].data?.[0])).toBe(true)
  })

  it('asks for --shape when an inner dimension is dynamic, and rejects shapes that do not fit', () => {
    expect(() => concreteShape({ name: 'x', datatype: 'FP32', shape: [-1, 3, 48, -1] }, {})).toThrow(
      expect.objectContaining({
        code: 'BENCH_SHAPE_REQUIRED',
        hint: expect.stringMatching(/--shape x=1,3,48,N/),
      }),
    )
    expect(() => concreteShape({ name: 'x', datatype: 'FP32', shape: [-1, 3] }, { x: [1, 4] })).toThrow(
      /does not match/,
    )
    expect(
      concreteShape({ name: 'x', datatype: 'FP32', shape: [-1, 3, 48, -1] }, { x: [1, 3, 48, 192] }),
    ).toEqual([1, 3, 48, 192])
  })
})
