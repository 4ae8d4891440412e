import { Redis } from 'ioredis'
import { Failure } from '../../shared/errors.js'
import { decide, type RateLimitDecision, type RateLimiter, type RateLimitPolicy } from './limiter.js'

/**
 * One atomic script per check: increment, open the window on the first hit, read what is left. Doing
 * INCR then EXPIRE as two round trips would leave a key without expiry if a client died in between,
 * and GET-then-SET would over-admit under concurrency (TOCTOU).
 * KEYS[1] counter; ARGV[1] window ms; ARGV[2] cost. Returns {count, ms left}.
 */
export const FIXED_WINDOW_SCRIPT = `
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
`

interface LimiterCommands {
  helixFixedWindow(key: string, windowMs: number, cost: number): Promise<[number, number]>
}

/**
 * How long one check may wait for Redis (ms). A check runs on every request, so a Redis that stops
 * answering must cost each request at most this long, not pile requests up.
 */
export const REDIS_COMMAND_TIMEOUT_MS = 1000

/**
 * Limits shared by every daemon that points at the same Redis (REDIS_URL). ioredis reconnects by
 * itself after Redis goes away; until it is back, checks fail at once (RATE_LIMITER_UNAVAILABLE)
 * instead of queueing, and rate_limit.on_store_error (store-errors.ts) decides what requests meet.
 */
export class RedisRateLimiter implements RateLimiter {
  private readonly redis: Redis & LimiterCommands
  /** The connection was ready once and is not now: fail fast rather than queue for a reconnect. */
  private lost = false

  constructor(
    urlOrClient: string | Redis,
    private readonly keyPrefix = 'helix:rl:',
  ) {
    const client =
      typeof urlOrClient === 'string'
        ? new Redis(urlOrClient, {
            // Before the first connection commands queue (bounded by commandTimeout), so a daemon
            // that starts with Redis counts its first requests; after a loss, check() fails fast.
            enableOfflineQueue: true,
            maxRetriesPerRequest: 1,
            commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
            connectTimeout: 2000,
            lazyConnect: false,
          })
        : urlOrClient
    // Connection errors surface as a Failure from check(); without a listener ioredis also prints them.
    client.on('error', () => {})
    client.on('ready', () => {
      this.lost = false
    })
    client.on('close', () => {
      this.lost = true
    })
    // defineCommand sends EVALSHA and falls back to EVAL once if the script cache was flushed.
    client.defineCommand('helixFixedWindow', { numberOfKeys: 1, lua: FIXED_WINDOW_SCRIPT })
    this.redis = client as Redis & LimiterCommands
  }

  async check(key: string, policy: RateLimitPolicy, cost = 1): Promise<RateLimitDecision> {
    const windowMs = policy.windowSeconds * 1000
    const id = `${this.keyPrefix}${policy.name}:${policy.windowSeconds}:${key}`
    let result: [number, number]
    try {
      if (this.lost) throw new Error(`connection lost (${this.redis.status})`)
      result = await this.redis.helixFixedWindow(id, windowMs, cost)
    } catch (err) {
      throw new Failure(
        'RATE_LIMITER_UNAVAILABLE',
        `The rate limiter's Redis did not answer: ${(err as Error).message}`,
        {
          hint: 'Check that Redis is running and REDIS_URL is right.',
          cause: err,
        },
      )
    }
    return decide(policy, Number(result[0]), Number(result[1]))
  }

  /** Seconds one PING takes (helix_redis_roundtrip_seconds); throws when Redis does not answer. */
  async roundTrip(): Promise<number> {
    const started = performance.now()
    await this.redis.ping()
    return (performance.now() - started) / 1000
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect())
  }
}
