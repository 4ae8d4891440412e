/**
 * A fixed-window limiter: a window opens at a key's first hit and admits `limit` units until it closes.
 * Within one window it admits exactly `limit` units, however the requests interleave across replicas
 * (the Redis limiter counts in one atomic script).
 */
export interface RateLimitPolicy {
  /** Policy name in the RateLimit headers, e.g. "per-key". */
  name: string
  /** Units admitted per window (q in RateLimit-Policy). */
  limit: number
  /** Window length in seconds (w in RateLimit-Policy). */
  windowSeconds: number
}

export interface RateLimitDecision {
  allowed: boolean
  /** Units left in the window after this check (never negative). */
  remaining: number
  /** Whole seconds until the window resets (≥ 1 while a window is open). */
  resetSeconds: number
  policy: RateLimitPolicy
  /** Admitted without counting: the limiter's store did not answer and the policy fails open. */
  unchecked?: true
}

export interface RateLimiter {
  /** Counts `cost` units against `key` under `policy` and says whether they fit. */
  check(key: string, policy: RateLimitPolicy, cost?: number): Promise<RateLimitDecision>
  close(): Promise<void>
}

/** Builds the decision from the count after this hit and the milliseconds left in the window. */
export function decide(policy: RateLimitPolicy, count: number, msLeft: number): RateLimitDecision {
  return {
    allowed: count <= policy.limit,
    remaining: Math.max(0, policy.limit - count),
    resetSeconds: Math.max(1, Math.ceil(msLeft / 1000)),
    policy,
  }
}
