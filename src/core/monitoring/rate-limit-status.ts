import type { HelixConfig } from '../../shared/config.js'
import * as repos from '../../state/db/repositories/index.js'
import { periodStart, secondsToPeriodEnd } from '../identity/api-keys.js'
import type { IdentityDeps } from '../identity/identity-deps.js'
import type { Principal } from '../identity/principal.js'
import type { RateLimiter, RateLimitPolicy } from '../limits/limiter.js'
import { type QuotaState, quotaState } from './usage-report.js'

/** One limit as it stands for the caller: the policy and what is left of its current window. */
export interface PolicyState {
  name: string
  limit: number
  windowSeconds: number
  remaining: number
  resetSeconds: number
}

export interface RateLimitStatus {
  /** Whose limits these are: key:<id> or user:<id>. */
  subject: string
  policies: PolicyState[]
  /** The key's quota with the usage counters' view of it; null without one. */
  quota: QuotaState | null
}

/**
 * The limits rateLimitGuard (limits/guard.ts) applies to this caller, under the same policy names
 * and limiter keys, read with a cost of 0 so that asking spends nothing. The windows are open already:
 * the call that asks was counted against them.
 */
export async function rateLimitStatus(
  deps: Pick<IdentityDeps, 'db'>,
  limiter: RateLimiter,
  config: HelixConfig,
  principal: Principal,
  ip: string,
): Promise<RateLimitStatus> {
  const subject = principal.keyId ? `key:${principal.keyId}` : `user:${principal.userId}`
  const checks: [string, RateLimitPolicy][] = [
    [ip, { name: 'per-ip', limit: config.rate_limit.per_ip_per_min, windowSeconds: 60 }],
    [
      subject,
      {
        name: 'per-key',
        limit: principal.rateLimitPerMin ?? config.rate_limit.per_key_per_min,
        windowSeconds: 60,
      },
    ],
  ]
  const quota = principal.quota
  if (quota) {
    const period = periodStart(quota.period).toISOString().slice(0, 10)
    const windowSeconds = secondsToPeriodEnd(quota.period)
    if (quota.requests)
      checks.push([
        `${subject}:${period}`,
        { name: `quota-${quota.period}`, limit: quota.requests, windowSeconds },
      ])
    if (quota.items && principal.keyId)
      checks.push([
        `key:${principal.keyId}:${period}:items`,
        { name: `quota-items-${quota.period}`, limit: quota.items, windowSeconds },
      ])
  }
  const decisions = await Promise.all(checks.map(([key, policy]) => limiter.check(key, policy, 0)))
  const row = principal.keyId ? await repos.apiKeys.findApiKeyById(deps.db, principal.keyId) : undefined
  return {
    subject,
    policies: decisions.map((d) => ({
      name: d.policy.name,
      limit: d.policy.limit,
      windowSeconds: d.policy.windowSeconds,
      remaining: d.remaining,
      resetSeconds: d.resetSeconds,
    })),
    quota: row ? await quotaState(deps, row) : null,
  }
}
