import type { FastifyReply, FastifyRequest } from 'fastify'
import { periodStart, secondsToPeriodEnd } from '../../core/identity/api-keys.js'
import type { Principal } from '../../core/identity/principal.js'
import { rateLimitHeaders } from '../../core/limits/headers.js'
import type { RateLimitDecision, RateLimiter } from '../../core/limits/limiter.js'
import type { HelixConfig } from '../../shared/config.js'
import { UserError } from '../../shared/errors.js'

/** Routes where guessing is the threat: a much lower per-IP limit (ASVS V6.3.1). */
const CREDENTIAL_ROUTES = new Set([
  '/auth/login',
  '/auth/register',
  '/auth/refresh',
  '/auth/password/forgot',
  '/auth/password/reset',
  '/auth/email/verify',
])

function rateLimited(decisions: RateLimitDecision[]): UserError {
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

function apply(reply: FastifyReply, decisions: RateLimitDecision[]): void {
  for (const [name, value] of Object.entries(rateLimitHeaders(decisions))) {
    if (name !== 'retry-after') reply.header(name, value)
  }
  if (decisions.some((d) => !d.allowed)) throw rateLimited(decisions)
}

/**
 * Per-IP and per-key (or per-user) limits and per-key request quotas. Headers follow the IETF
 * RateLimit fields draft; refusals are 429 with Retry-After (set by the errors plugin).
 */
export function rateLimitGuard(limiter: RateLimiter, config: HelixConfig) {
  const perIp = { name: 'per-ip', limit: config.rate_limit.per_ip_per_min, windowSeconds: 60 }
  const perIpAuth = { name: 'per-ip-auth', limit: config.rate_limit.auth_per_ip_per_min, windowSeconds: 60 }

  return {
    /** Before authentication: every request counts against its IP. */
    async byIp(request: FastifyRequest, reply: FastifyReply, route: string | undefined): Promise<void> {
      const decisions = [await limiter.check(request.ip, perIp)]
      if (route && CREDENTIAL_ROUTES.has(route)) decisions.push(await limiter.check(request.ip, perIpAuth))
      apply(reply, decisions)
    },

    /** After authentication: the key's (or user's) own limit and the key's quota. */
    async byPrincipal(_request: FastifyRequest, reply: FastifyReply, principal: Principal): Promise<void> {
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
      apply(reply, decisions)
    },

    /** With the body parsed: items (batch rows) against an items quota. */
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
