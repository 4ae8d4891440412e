import { join } from 'node:path'
import { execa } from 'execa'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rateLimitHeaders } from '../../../src/core/limits/headers.js'
import type { RateLimitPolicy } from '../../../src/core/limits/limiter.js'
import { MemoryRateLimiter } from '../../../src/core/limits/memory-limiter.js'
import { FIXED_WINDOW_SCRIPT, RedisRateLimiter } from '../../../src/core/limits/redis-limiter.js'
import { StoreErrorPolicy } from '../../../src/core/limits/store-errors.js'
import { hasTool } from '../../helpers/tools.js'
import { type RedisHandle, startRedis } from './redis-server.js'

const perKey: RateLimitPolicy = { name: 'per-key', limit: 5, windowSeconds: 60 }

describe('memory limiter', () => {
  it('admits exactly the limit per window, then refuses until the window resets', async () => {
    let now = 1_000_000
    const limiter = new MemoryRateLimiter(() => now)
    const results = []
    for (let i = 0; i < 8; i++) results.push(await limiter.check('k1', perKey))
    expect(results.filter((r) => r.allowed)).toHaveLength(5)
    expect(results.map((r) => r.remaining)).toEqual([4, 3, 2, 1, 0, 0, 0, 0])
    expect(results[7]).toMatchObject({ allowed: false, resetSeconds: 60 })
    now += 59_500
    expect(await limiter.check('k1', perKey)).toMatchObject({ allowed: false, resetSeconds: 1 })
    expect(await limiter.check('k2', perKey)).toMatchObject({ allowed: true, remaining: 4 })
    now += 600
    expect(await limiter.check('k1', perKey)).toMatchObject({ allowed: true, remaining: 4 })
    await limiter.close()
  })

  it('counts a cost of several units and sweeps closed windows', async () => {
    let now = 0
    const limiter = new MemoryRateLimiter(() => now)
    expect(await limiter.check('k', perKey, 4)).toMatchObject({ allowed: true, remaining: 1 })
    expect(await limiter.check('k', perKey, 2)).toMatchObject({ allowed: false, remaining: 0 })
    expect(limiter.size).toBe(1)
    now += 61_000
    limiter.sweep()
    expect(limiter.size).toBe(0)
    await limiter.close()
  })
})

describe('RateLimit headers (IETF draft)', () => {
  it('formats the policy and the remaining quota', () => {
    expect(
      rateLimitHeaders([
        {
          allowed: true,
          remaining: 42,
          resetSeconds: 17,
          policy: { name: 'per-key', limit: 100, windowSeconds: 60 },
        },
      ]),
    ).toEqual({
      'ratelimit-policy': '"per-key";q=100;w=60',
      ratelimit: '"per-key";r=42;t=17',
    })
  })

  it('reports the tightest of several policies and Retry-After on refusal', () => {
    const headers = rateLimitHeaders([
      {
        allowed: true,
        remaining: 9,
        resetSeconds: 30,
        policy: { name: 'per-ip', limit: 10, windowSeconds: 60 },
      },
      {
        allowed: false,
        remaining: 0,
        resetSeconds: 12,
        policy: { name: 'per-key', limit: 3, windowSeconds: 60 },
      },
    ])
    expect(headers).toEqual({
      'ratelimit-policy': '"per-ip";q=10;w=60, "per-key";q=3;w=60',
      ratelimit: '"per-key";r=0;t=12',
      'retry-after': '12',
    })
    expect(rateLimitHeaders([])).toEqual({})
  })
})

describe.skipIf(!hasTool('redis-server'))('Redis limiter (real redis-server)', () => {
  let redis: RedisHandle
  beforeAll(async () => {
    redis = await startRedis()
  })
  afterAll(async () => {
    await redis?.stop()
  })

  it('admits exactly N and sets the window expiry in the same script', async () => {
    const limiter = new RedisRateLimiter(redis.url, 'test-a:')
    const results = []
    for (let i = 0; i < 7; i++) results.push(await limiter.check('k', perKey))
    expect(results.filter((r) => r.allowed)).toHaveLength(5)
    expect(results[6]).toMatchObject({ allowed: false, remaining: 0 })
    expect(results[6].resetSeconds).toBeGreaterThan(55)
    const probe = new Redis(redis.url)
    const ttl = await probe.pttl('test-a:per-key:60:k')
    expect(ttl).toBeGreaterThan(55_000)
    expect(ttl).toBeLessThanOrEqual(60_000)
    probe.disconnect()
    await limiter.close()
  })

  it('reopens the window after it expires', async () => {
    const limiter = new RedisRateLimiter(redis.url, 'test-b:')
    const short = { name: 'per-key', limit: 1, windowSeconds: 1 }
    expect((await limiter.check('k', short)).allowed).toBe(true)
    expect((await limiter.check('k', short)).allowed).toBe(false)
    await new Promise((r) => setTimeout(r, 1100))
    expect((await limiter.check('k', short)).allowed).toBe(true)
    await limiter.close()
  })

  it('two limiter instances on two connections admit exactly N of a concurrent burst', async () => {
    const a = new RedisRateLimiter(redis.url, 'test-c:')
    const b = new RedisRateLimiter(new Redis(redis.url), 'test-c:')
    const policy = { name: 'per-key', limit: 50, windowSeconds: 60 }
    const burst = await Promise.all(
      Array.from({ length: 400 }, (_, i) => (i % 2 === 0 ? a : b).check('shared', policy)),
    )
    expect(burst.filter((r) => r.allowed)).toHaveLength(50)
    await a.close()
    await b.close()
  })

  it('two OS processes running the script concurrently admit exactly N', async () => {
    const limiter = new RedisRateLimiter(redis.url, 'test-d:')
    const policy = { name: 'per-key', limit: 100, windowSeconds: 60 }
    const worker = execa(
      'node',
      [join(import.meta.dirname, 'burst-worker.mjs'), redis.url, 'test-d:per-key:60:shared', '60000', '300'],
      {
        env: { HELIX_RL_SCRIPT: FIXED_WINDOW_SCRIPT },
        cwd: process.cwd(),
      },
    )
    await new Promise((r) => setTimeout(r, 500))
    worker.stdin?.end('go\n')
    const local = Promise.all(Array.from({ length: 300 }, () => limiter.check('shared', policy)))
    const [mine, theirs] = await Promise.all([local, worker])
    const theirCounts = JSON.parse(String(theirs.stdout)) as number[]
    const admitted = mine.filter((r) => r.allowed).length + theirCounts.filter((c) => c <= 100).length
    expect(admitted).toBe(100)
    // Every count from 1 to 600 was handed out exactly once across both processes.
    const all = [...theirCounts, ...mine.map((r) => 100 - r.remaining)].filter((c) => c <= 100)
    expect(new Set(all).size).toBe(100)
    await limiter.close()
  })

  it('reports an unreachable Redis as a Failure with a hint', async () => {
    const dead = new RedisRateLimiter(
      new Redis('redis://127.0.0.1:1', {
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        lazyConnect: true,
      }),
    )
    await expect(dead.check('k', perKey)).rejects.toMatchObject({ code: 'RATE_LIMITER_UNAVAILABLE' })
    await dead.close()
  })
})

describe.skipIf(!hasTool('redis-server'))(
  'rate_limit.on_store_error over a Redis that stops (real redis-server)',
  () => {
    it('fails each check fast while Redis is down: limits admit uncounted, quotas refuse; counted again once back', async () => {
      let redis = await startRedis()
      const store = new RedisRateLimiter(redis.url, 'test-outage:')
      const warnings: unknown[] = []
      const infos: unknown[] = []
      const log = {
        debug: () => {},
        info: (o: object) => infos.push(o),
        warn: (o: object) => warnings.push(o),
        error: () => {},
      }
      const limiter = new StoreErrorPolicy(store, { limits: 'fail-open', quotas: 'fail-closed' }, () => log)
      const seen: string[] = []
      limiter.onStoreError = (policy, outcome) => seen.push(`${policy}:${outcome}`)
      const quota: RateLimitPolicy = { name: 'quota-day', limit: 100, windowSeconds: 86_400 }
      try {
        expect((await limiter.check('k', perKey)).remaining).toBe(4)
        await redis.stop()
        const started = performance.now()
        const during = []
        for (let i = 0; i < 20; i++) during.push(await limiter.check('k', perKey))
        // Twenty checks, none waiting on a reconnect: each fails at once.
        expect(performance.now() - started).toBeLessThan(1500)
        expect(during.every((d) => d.allowed && d.unchecked)).toBe(true)
        await expect(limiter.check('k', quota)).rejects.toMatchObject({
          code: 'RATE_LIMITER_UNAVAILABLE',
          kind: 'unavailable',
          message: expect.stringMatching(/quota-day .*rate_limit\.on_store_error\.quotas is fail-closed/),
        })
        expect(seen.filter((s) => s === 'per-key:admitted')).toHaveLength(20)
        expect(seen.filter((s) => s === 'quota-day:refused')).toHaveLength(1)
        // One warning for the outage, not one per check.
        expect(warnings).toHaveLength(1)
        expect(limiter.storeDown).toBe(true)
        redis = await startRedis(redis.port)
        // ioredis reconnects by itself (backoff up to 2 s); the window was lost with the unpersisted server.
        const deadline = Date.now() + 10_000
        let back = await limiter.check('k', perKey)
        while (back.unchecked && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 100))
          back = await limiter.check('k', perKey)
        }
        expect(back.unchecked).toBeUndefined()
        expect(back.remaining).toBe(4)
        expect(limiter.storeDown).toBe(false)
        expect(infos).toHaveLength(1)
      } finally {
        await limiter.close()
        await redis.stop()
      }
    })
  },
)
