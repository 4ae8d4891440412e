import type { StoreErrorMode } from '../../shared/config-schema.js'
import { Failure, isHelixError } from '../../shared/errors.js'
import type { CoreLogger } from '../logger.js'
import type { RateLimitDecision, RateLimiter, RateLimitPolicy } from './limiter.js'

/** rate_limit.on_store_error: one mode for requests-per-minute limits, one for quotas. */
export interface StoreErrorSettings {
  limits: StoreErrorMode
  quotas: StoreErrorMode
}

/** Which setting decides a policy: quotas (quota-day, quota-items-month, …) or limits (per-ip, per-key, …). */
export function storeErrorKind(policy: RateLimitPolicy): keyof StoreErrorSettings {
  return policy.name.startsWith('quota-') ? 'quotas' : 'limits'
}

export type StoreErrorOutcome = 'admitted' | 'refused'

/**
 * The limiter the guard uses when the counters live in a store that can go away (Redis): a check
 * the store cannot answer (RATE_LIMITER_UNAVAILABLE) is admitted uncounted (fail-open) or refused
 * with 503 (fail-closed), per kind of policy. While the store is down one warning is logged every
 * `warnEveryMs` (with how many checks failed meanwhile), and one info line when it answers again.
 */
export class StoreErrorPolicy implements RateLimiter {
  /** Told of every check the store could not answer (helix_rate_limit_store_errors_total). */
  onStoreError: ((policy: string, outcome: StoreErrorOutcome) => void) | undefined
  private downSince: number | undefined
  /** When the last warning was logged; undefined while the store answers. */
  private lastWarning: number | undefined
  private failedSinceWarning = 0

  constructor(
    private readonly store: RateLimiter,
    private readonly settings: StoreErrorSettings,
    /** Read at each use: the daemon's logger is set after the identity layer is built. */
    private readonly log: () => CoreLogger | undefined = () => undefined,
    private readonly warnEveryMs = 30_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether the store failed its last check (until one answers again). */
  get storeDown(): boolean {
    return this.downSince !== undefined
  }

  async check(key: string, policy: RateLimitPolicy, cost?: number): Promise<RateLimitDecision> {
    let decision: RateLimitDecision
    try {
      decision = await this.store.check(key, policy, cost)
    } catch (err) {
      if (!isHelixError(err) || err.code !== 'RATE_LIMITER_UNAVAILABLE') throw err
      return this.storeFailed(err, policy)
    }
    if (this.downSince !== undefined) this.storeBack()
    return decision
  }

  private storeFailed(err: Error, policy: RateLimitPolicy): RateLimitDecision {
    const now = this.now()
    const mode = this.settings[storeErrorKind(policy)]
    const outcome: StoreErrorOutcome = mode === 'fail-open' ? 'admitted' : 'refused'
    this.onStoreError?.(policy.name, outcome)
    this.failedSinceWarning++
    if (this.downSince === undefined) this.downSince = now
    if (this.lastWarning === undefined || now - this.lastWarning >= this.warnEveryMs) {
      this.log()?.warn(
        {
          err,
          failedChecks: this.failedSinceWarning,
          downForMs: now - this.downSince,
          limits: this.settings.limits,
          quotas: this.settings.quotas,
        },
        'rate limiter store (Redis) unavailable: applying rate_limit.on_store_error',
      )
      this.lastWarning = now
      this.failedSinceWarning = 0
    }
    if (outcome === 'admitted') return { ...admitted(policy), unchecked: true }
    throw new Failure(
      'RATE_LIMITER_UNAVAILABLE',
      `Cannot check the ${policy.name} limit: the rate limiter's store does not answer, and rate_limit.on_store_error.${storeErrorKind(policy)} is fail-closed. Try again shortly.`,
      { hint: 'Check that Redis is running and REDIS_URL is right.', cause: err },
    )
  }

  private storeBack(): void {
    const downForMs = this.now() - (this.downSince ?? this.now())
    this.downSince = undefined
    this.failedSinceWarning = 0
    this.lastWarning = undefined
    this.log()?.info({ downForMs }, 'rate limiter store (Redis) answers again: limits are counted again')
  }

  close(): Promise<void> {
    return this.store.close()
  }
}

/** A decision that admits without counting: the whole limit left, a window of the policy's length. */
function admitted(policy: RateLimitPolicy): RateLimitDecision {
  return { allowed: true, remaining: policy.limit, resetSeconds: policy.windowSeconds, policy }
}
