import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Principal } from '../../core/identity/principal.js'
import { type RateLimitGuard, refuseIfLimited } from '../../core/limits/guard.js'
import { rateLimitHeaders } from '../../core/limits/headers.js'
import type { RateLimitDecision } from '../../core/limits/limiter.js'

/** Routes where guessing is the threat: a much lower per-IP limit (ASVS V6.3.1). */
const CREDENTIAL_ROUTES = new Set([
  '/auth/login',
  '/auth/register',
  '/auth/refresh',
  '/auth/password/forgot',
  '/auth/password/reset',
  '/auth/email/verify',
])

function apply(reply: FastifyReply, decisions: RateLimitDecision[]): void {
  for (const [name, value] of Object.entries(rateLimitHeaders(decisions))) {
    if (name !== 'retry-after') reply.header(name, value)
  }
  refuseIfLimited(decisions)
}

/**
 * The REST face of the rate-limit guard (core/limits/guard.ts): headers follow the IETF RateLimit
 * fields draft; refusals are 429 with Retry-After (set by the errors plugin).
 */
export function httpRateLimits(guard: RateLimitGuard) {
  return {
    /** Before authentication: every request counts against its IP. */
    async byIp(request: FastifyRequest, reply: FastifyReply, route: string | undefined): Promise<void> {
      apply(reply, await guard.byIp(request.ip, route !== undefined && CREDENTIAL_ROUTES.has(route)))
    },
    /** After authentication: the key's (or user's) own limit and the key's quota. */
    async byPrincipal(reply: FastifyReply, principal: Principal): Promise<void> {
      apply(reply, await guard.byPrincipal(principal))
    },
    byItems: guard.byItems,
  }
}

export type HttpRateLimits = ReturnType<typeof httpRateLimits>
