import { decide, type RateLimitDecision, type RateLimiter, type RateLimitPolicy } from './limiter.js'

interface Window {
  count: number
  resetAt: number
}

/**
 * The default limiter of a single daemon: counters in a Map. Limits hold per process only; configure
 * Redis (REDIS_URL) for limits that hold across replicas.
 */
export class MemoryRateLimiter implements RateLimiter {
  private readonly windows = new Map<string, Window>()
  private readonly sweeper: NodeJS.Timeout

  constructor(
    private readonly now: () => number = Date.now,
    sweepEveryMs = 60_000,
  ) {
    // Expired windows are dropped periodically so idle keys do not accumulate.
    this.sweeper = setInterval(() => this.sweep(), sweepEveryMs)
    this.sweeper.unref()
  }

  async check(key: string, policy: RateLimitPolicy, cost = 1): Promise<RateLimitDecision> {
    const now = this.now()
    const id = `${policy.name}:${policy.windowSeconds}:${key}`
    let window = this.windows.get(id)
    if (!window || window.resetAt <= now) {
      window = { count: 0, resetAt: now + policy.windowSeconds * 1000 }
      this.windows.set(id, window)
    }
    window.count += cost
    return decide(policy, window.count, window.resetAt - now)
  }

  /** Number of open windows (for tests and metrics). */
  get size(): number {
    return this.windows.size
  }

  sweep(): void {
    const now = this.now()
    for (const [id, window] of this.windows) if (window.resetAt <= now) this.windows.delete(id)
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper)
    this.windows.clear()
  }
}
