import { describe, expect, it } from 'vitest'
import { fromHalfBits, toHalfBits } from '../../../src/core/infer/fp16.js'
import type { Datatype } from '../../../src/core/infer/types.js'
import { decodeJsonData, encodeJsonData, flatten } from '../../../src/http/kserve/json-tensor.js'
import { isHelixError } from '../../../src/shared/errors.js'

function rejects(fn: () => unknown, pattern: RegExp) {
  try {
    fn()
  } catch (err) {
    expect(isHelixError(err) && err.code).toBe('INVALID_INPUT')
    expect((err as Error).message).toMatch(pattern)
    return
  }
  throw new Error('expected INVALID_INPUT')
}

const roundTrips: [Datatype, unknown[], string][] = [
  ['BOOL', [true, false, true], '[true,false,true]'],
  ['UINT8', [0, 255, 7], '[0,255,7]'],
  ['UINT16', [0, 65535, 7], '[0,65535,7]'],
  ['UINT32', [0, 4294967295, 7], '[0,4294967295,7]'],
  ['INT8', [-128, 127, 0], '[-128,127,0]'],
  ['INT16', [-32768, 32767, 0], '[-32768,32767,0]'],
  ['INT32', [-2147483648, 2147483647, 0], '[-2147483648,2147483647,0]'],
  [
    'INT64',
    [-5, '9223372036854775807', '-9223372036854775808'],
    '[-5,9223372036854775807,-9223372036854775808]',
  ],
  ['UINT64', [5, '18446744073709551615', 0], '[5,18446744073709551615,0]'],
  ['FP16', [1.5, -2, 65504], '[1.5,-2,65504]'],
  ['FP32', [1.5, -2.25, 0], '[1.5,-2.25,0]'],
  ['FP64', [0.1, -1e300, 3], '[0.1,-1e+300,3]'],
  ['BYTES', ['héllo', '', 'x'], '["héllo","","x"]'],
]

describe('JSON tensors', () => {
  it.each(roundTrips)('%s decodes and encodes back to the same JSON', (datatype, data, json) => {
    const decoded = decodeJsonData('t', datatype, [3], data)
    expect(decoded.length).toBe(3)
    expect(encodeJsonData(datatype, decoded)).toBe(json)
    expect(JSON.parse(json)).toHaveLength(3)
  })

  it('uses the typed arrays of the core contract', () => {
    expect(decodeJsonData('t', 'INT64', [1], [3])).toEqual(new BigInt64Array([3n]))
    expect(decodeJsonData('t', 'UINT64', [1], ['18446744073709551615'])).toEqual(
      new BigUint64Array([2n ** 64n - 1n]),
    )
    expect(decodeJsonData('t', 'FP16', [1], [1])).toEqual(new Uint16Array([0x3c00]))
    expect(decodeJsonData('t', 'BOOL', [2], [1, 0])).toEqual(new Uint8Array([1, 0]))
    expect(decodeJsonData('t', 'BYTES', [1], ['ab'])).toEqual([new Uint8Array([97, 98])])
    expect(decodeJsonData('t', 'FP32', [1], [0.1])).toEqual(new Float32Array([0.1]))
  })

  it('accepts nested data row-major and checks the element count', () => {
    expect(
      Array.from(
        decodeJsonData(
          't',
          'INT32',
          [2, 2],
          [
            [1, 2],
            [3, 4],
          ],
        ) as Int32Array,
      ),
    ).toEqual([1, 2, 3, 4])
    expect(
      flatten([
        [[1], [2]],
        [[3], [4]],
      ]),
    ).toEqual([1, 2, 3, 4])
    expect(decodeJsonData('t', 'FP32', [], [7])).toEqual(new Float32Array([7]))
    rejects(
      () => decodeJsonData('x', 'FP32', [2, 3], [1, 2, 3]),
      /shape \[2, 3\] holds 6 elements but data has 3/,
    )
    rejects(() => decodeJsonData('x', 'FP32', [1], 5), /data must be an array/)
  })

  it('carries NaN and ±Infinity as strings both ways', () => {
    const decoded = decodeJsonData('t', 'FP32', [4], ['NaN', 'Infinity', '-Infinity', 1]) as Float32Array
    expect(Number.isNaN(decoded[0])).toBe(true)
    expect(decoded[1]).toBe(Number.POSITIVE_INFINITY)
    expect(decoded[2]).toBe(Number.NEGATIVE_INFINITY)
    expect(encodeJsonData('FP32', decoded)).toBe('["NaN","Infinity","-Infinity",1]')
    expect(encodeJsonData('FP64', new Float64Array([Number.NaN]))).toBe('["NaN"]')
    const half = decodeJsonData('t', 'FP16', [2], ['Infinity', 'NaN'])
    expect(encodeJsonData('FP16', half)).toBe('["Infinity","NaN"]')
  })

  it('refuses values outside the datatype with the element and what was expected', () => {
    rejects(
      () => decodeJsonData('x', 'UINT8', [1], [256]),
      /element 0 is 256, expected an integer from 0 to 255/,
    )
    rejects(() => decodeJsonData('x', 'INT8', [1], [1.5]), /expected an integer from -128 to 127/)
    rejects(() => decodeJsonData('x', 'INT32', [1], ['1']), /element 0 is "1"/)
    rejects(() => decodeJsonData('x', 'FP32', [2], [1, 'abc']), /element 1 is "abc", expected a number/)
    rejects(() => decodeJsonData('x', 'BOOL', [1], ['yes']), /expected true or false/)
    rejects(() => decodeJsonData('x', 'BYTES', [1], [3]), /expected a string/)
    rejects(() => decodeJsonData('x', 'INT64', [1], [2 ** 60]), /decimal string/)
    rejects(() => decodeJsonData('x', 'INT64', [1], ['9223372036854775808']), /INT64 range/)
    rejects(() => decodeJsonData('x', 'UINT64', [1], [-1]), /UINT64 range/)
    rejects(
      () => decodeJsonData('x', 'BF16', [1], [1]),
      /BF16 tensors travel only through the binary extension/,
    )
  })

  it('emits BF16 outputs as numbers', () => {
    expect(encodeJsonData('BF16', new Uint16Array([0x3fc0, 0xc000]))).toBe('[1.5,-2]')
  })
})

describe('FP16 conversion', () => {
  it('round-trips every finite half exactly', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = fromHalfBits(bits)
      if (Number.isNaN(value)) continue
      expect(toHalfBits(value)).toBe(bits)
    }
  })

  it('rounds to nearest even, saturates to Infinity and flushes tiny values to zero', () => {
    expect(toHalfBits(1 + 2 ** -11)).toBe(0x3c00) // halfway between 1 and the next half: ties to even
    expect(toHalfBits(1 + 3 * 2 ** -11)).toBe(0x3c02)
    expect(toHalfBits(65520)).toBe(0x7c00)
    expect(toHalfBits(1e10)).toBe(0x7c00)
    expect(toHalfBits(-1e10)).toBe(0xfc00)
    expect(toHalfBits(2 ** -30)).toBe(0)
    expect(toHalfBits(2 ** -24)).toBe(1) // smallest subnormal
    expect(toHalfBits(3 * 2 ** -26)).toBe(1) // rounds within the subnormals
    expect(toHalfBits(Number.NaN) & 0x7e00).toBe(0x7e00)
    expect(fromHalfBits(0x7c01)).toBeNaN()
    expect(fromHalfBits(0xfc00)).toBe(Number.NEGATIVE_INFINITY)
    expect(fromHalfBits(0x3555)).toBeCloseTo(0.333, 3)
  })
})
