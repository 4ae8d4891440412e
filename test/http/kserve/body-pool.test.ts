import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { BodyPool, readBody } from '../../../src/http/kserve/read-body.js'

describe('BodyPool', () => {
  it('hands a given-back body to the next request of that size', () => {
    const pool = new BodyPool()
    const first = pool.take(110_700)
    expect(first.byteLength).toBe(28 * 4096)
    expect(first.byteOffset).toBe(0)
    first.fill(7)
    pool.give(first.subarray(3, 100))
    expect(pool.spareBytes).toBe(28 * 4096)
    const second = pool.take(110_600)
    // The same memory (still holding the first body's bytes), not a fresh allocation.
    expect(second[0]).toBe(7)
    expect(pool.spareBytes).toBe(0)
    // Other sizes get fresh memory and leave the spare alone.
    pool.give(second)
    expect(pool.take(5000).byteLength).toBe(2 * 4096)
    expect(pool.spareBytes).toBe(28 * 4096)
  })

  it('takes back only its own memory, once, within its bounds', () => {
    const pool = new BodyPool(3 * 4096, 2)
    // Not from this pool (e.g. a slice of Node's shared pool): ignored.
    pool.give(Buffer.allocUnsafe(100))
    pool.give(Buffer.alloc(4096))
    expect(pool.spareBytes).toBe(0)
    const a = pool.take(10)
    pool.give(a)
    pool.give(a)
    expect(pool.spareBytes).toBe(4096)
    const [b, c, d] = [pool.take(10), pool.take(10), pool.take(10)]
    for (const body of [b, c, d]) pool.give(body)
    // Two per size at most.
    expect(pool.spareBytes).toBe(2 * 4096)
    const big = pool.take(2 * 4096)
    pool.give(big)
    // 2 × 4 KiB + 8 KiB would pass the 12 KiB limit.
    expect(pool.spareBytes).toBe(2 * 4096)
  })

  it('readBody fills pooled memory, aligned for the binary part', async () => {
    const pool = new BodyPool()
    const stream = new PassThrough()
    stream.end(Buffer.from('abcdefgh'))
    const body = await readBody(stream, { contentLength: 8, limit: 100, alignAt: 3, pool })
    expect(body.toString()).toBe('abcdefgh')
    expect((body.byteOffset + 3) % 8).toBe(0)
    expect(body.buffer.byteLength).toBe(4096)
    pool.give(body)
    expect(pool.spareBytes).toBe(4096)
  })
})
