import { describe, expect, it } from 'vitest'
import { concatInputs, splitOutputs } from '../../../src/core/infer/batcher.js'
import { ResponseCache } from '../../../src/core/infer/response-cache.js'
import { pickVersion, stickyPoint } from '../../../src/core/infer/traffic.js'
import type { Tensor } from '../../../src/core/infer/types.js'

const bytes = (...items: string[]) => items.map((s) => new TextEncoder().encode(s))

describe('concatInputs / splitOutputs', () => {
  it('concatenates numeric and BYTES inputs along dim 0 and splits them back as views', () => {
    const a: Tensor[] = [
      { name: 'x', datatype: 'INT32', shape: [1, 2], data: Int32Array.from([1, 2]) },
      { name: 's', datatype: 'BYTES', shape: [1], data: bytes('a') },
    ]
    const b: Tensor[] = [
      { name: 'x', datatype: 'INT32', shape: [2, 2], data: Int32Array.from([3, 4, 5, 6]) },
      { name: 's', datatype: 'BYTES', shape: [2], data: bytes('b', 'c') },
    ]
    const batch = concatInputs([
      { inputs: a, batchSize: 1 },
      { inputs: b, batchSize: 2 },
    ])
    expect(batch).toEqual([
      { name: 'x', datatype: 'INT32', shape: [3, 2], data: Int32Array.from([1, 2, 3, 4, 5, 6]) },
      { name: 's', datatype: 'BYTES', shape: [3], data: bytes('a', 'b', 'c') },
    ])
    const [first, second] = splitOutputs(batch, [1, 2])
    expect(first).toEqual(a)
    expect(second).toEqual(b)
    // Views, not copies: the split shares the batch buffer.
    expect((second[0].data as Int32Array).buffer).toBe((batch[0].data as Int32Array).buffer)
  })

  it('passes a single request through untouched', () => {
    const only: Tensor[] = [{ name: 'x', datatype: 'FP32', shape: [2], data: Float32Array.from([1, 2]) }]
    expect(concatInputs([{ inputs: only, batchSize: 2 }])).toBe(only)
    expect(splitOutputs(only, [2])[0]).toBe(only)
  })

  it('refuses to split an output whose dim 0 is not the batch', () => {
    const out: Tensor[] = [{ name: 'y', datatype: 'FP32', shape: [1, 2], data: Float32Array.from([1, 2]) }]
    expect(() => splitOutputs(out, [1, 1])).toThrow(
      "output 'y' has 1 rows for a batch of 2; it cannot be split",
    )
  })
})

describe('traffic', () => {
  it('is sticky and spread for keys, and skips versions that are not ready', () => {
    expect(stickyPoint('alice')).toBe(stickyPoint('alice'))
    expect(stickyPoint('alice')).not.toBe(stickyPoint('bob'))
    const shares = [
      { version: '1', weight: 1 },
      { version: '2', weight: 3 },
    ]
    expect(pickVersion(shares, new Set(['1', '2']), undefined, () => 0.2)).toBe('1')
    expect(pickVersion(shares, new Set(['1', '2']), undefined, () => 0.3)).toBe('2')
    expect(pickVersion(shares, new Set(['2']), undefined, () => 0)).toBe('2')
    expect(pickVersion(shares, new Set(['3']))).toBeUndefined()
    // Rounding at the very top of the range still lands on a version.
    expect(pickVersion(shares, new Set(['1', '2']), undefined, () => 0.9999999999999999)).toBe('2')
    expect(pickVersion(shares, new Set(['1', '2']), undefined, () => 1)).toBe('2')
  })
})

describe('ResponseCache', () => {
  it('keys on version, outputs, names, shapes and bytes, and evicts the least recently used', () => {
    const t = (data: Tensor['data'], datatype: Tensor['datatype'] = 'FP32'): Tensor[] => [
      { name: 'x', datatype, shape: [data.length], data },
    ]
    const k1 = ResponseCache.key('1', t(Float32Array.from([1, 2])))
    expect(ResponseCache.key('1', t(Float32Array.from([1, 2])))).toBe(k1)
    expect(ResponseCache.key('2', t(Float32Array.from([1, 2])))).not.toBe(k1)
    expect(ResponseCache.key('1', t(Float32Array.from([1, 2])), ['y'])).not.toBe(k1)
    expect(ResponseCache.key('1', t(bytes('ab', 'c'), 'BYTES'))).not.toBe(
      ResponseCache.key('1', t(bytes('a', 'bc'), 'BYTES')),
    )
    const view = Float32Array.from([9, 1, 2]).subarray(1)
    expect(ResponseCache.key('1', t(view))).toBe(k1)
    const cache = new ResponseCache(2)
    cache.set('a', [])
    cache.set('b', [])
    expect(cache.get('a')).toEqual([])
    cache.set('c', [])
    expect(cache.get('b')).toBeUndefined()
    expect(cache.size).toBe(2)
    expect([cache.hits, cache.misses]).toEqual([1, 1])
  })
})
