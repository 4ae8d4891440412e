import type { HelixConfig } from '../../shared/config.js'
import { UserError } from '../../shared/errors.js'
import { periodStart, secondsToPeriodEnd } from '../identity/api-keys.js'
import type { Principal } from '../identity/principal.js'
import type { RateLimitDecision, RateLimiter } from './limiter.js'

/** RATE_LIMITED naming the refused policies, with the seconds until the last of them resets. */
export function rateLimited(decisions: readonly RateLimitDecision[]): UserError {
  const refused = decisions.filter((d) => !d.allowed)
  const retryAfterSeconds = Math.max(...refused.map((d) => d.resetSeconds))
  return new UserError(
    'RATE_LIMITED',
    `Rate limit exceeded (${refused.map((d) => d.policy.name).join(', ')}).`,
    {
      hint: 'Wait for the number of seconds in Retry-After, or ask for a higher limit.',
      details: { retryAfterSeconds },
    },
  )
}

/** Throws RATE_LIMITED when any decision refused. */
export function refuseIfLimited(decisions: readonly RateLimitDecision[]): void {
  if (decisions.some((d) => !d.allowed)) throw rateLimited(decisions)
}

/**
 * Per-IP and per-key (or per-user) limits and per-key request and item quotas, for every protocol.
 * The checks count and return their decisions; each face reports them its own way (REST as RateLimit
 * headers) and then refuses with refuseIfLimited.
 */
export function rateLimitGuard(limiter: RateLimiter, config: HelixConfig) {
  const perIp = { name: 'per-ip', limit: config.rate_limit.per_ip_per_min, windowSeconds: 60 }
  const perIpAuth = { name: 'per-ip-auth', limit: config.rate_limit.auth_per_ip_per_min, windowSeconds: 60 }

  return {
    /**
     * Before authentication: every request counts against its IP; calls that take a password or a
     * token (sign-in, registration, refresh, resets) also count against a much lower limit (ASVS V6.3.1).
     */
    async byIp(ip: string, credentialCall: boolean): Promise<RateLimitDecision[]> {
      const decisions = [await limiter.check(ip, perIp)]
      if (credentialCall) decisions.push(await limiter.check(ip, perIpAuth))
      return decisions
    },

    /** After authentication: the key's (or user's) own limit and the key's request quota. */
    async byPrincipal(principal: Principal): Promise<RateLimitDecision[]> {
      const id = principal.keyId ? `key:${principal.keyId}` : `user:${principal.userId}`
      const decisions = [
        await limiter.check(id, {
          name: 'per-key',
          limit: principal.rateLimitPerMin ?? config.rate_limit.per_key_per_min,
          windowSeconds: 60,
        }),
      ]
      const quota = principal.quota
      if (quota?.requests) {
        const period = periodStart(quota.period).toISOString().slice(0, 10)
        decisions.push(
          await limiter.check(`${id}:${period}`, {
            name: `quota-${quota.period}`,
            limit: quota.requests,
            windowSeconds: secondsToPeriodEnd(quota.period),
          }),
        )
      }
      return decisions
    },

    /** Items (batch rows) of an inference request against the key's items quota; throws when over. */
    async byItems(principal: Principal, items: number): Promise<void> {
      const quota = principal.quota
      if (!quota?.items || !principal.keyId || items <= 0) return
      const period = periodStart(quota.period).toISOString().slice(0, 10)
      const decision = await limiter.check(
        `key:${principal.keyId}:${period}:items`,
        {
          name: `quota-items-${quota.period}`,
          limit: quota.items,
          windowSeconds: secondsToPeriodEnd(quota.period),
        },
        items,
      )
      if (!decision.allowed) throw rateLimited([decision])
    },
  }
}

export type RateLimitGuard = ReturnType<typeof rateLimitGuard>
