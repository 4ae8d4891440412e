import type { RateLimitDecision } from './limiter.js'

/**
 * Response headers of the IETF RateLimit fields draft (draft-ietf-httpapi-ratelimit-headers):
 * `RateLimit-Policy: "per-key";q=100;w=60` and `RateLimit: "per-key";r=42;t=17`, plus Retry-After
 * (RFC 9110) on a refusal. With several policies, the most restrictive one is reported.
 */
export function rateLimitHeaders(all: readonly RateLimitDecision[]): Record<string, string> {
  // A policy admitted uncounted (its store did not answer) has no remaining figure to report.
  const decisions = all.filter((d) => !d.unchecked)
  if (decisions.length === 0) return {}
  const tightest = [...decisions].sort(
    (a, b) =>
      Number(a.allowed) - Number(b.allowed) || a.remaining - b.remaining || b.resetSeconds - a.resetSeconds,
  )[0]
  const headers: Record<string, string> = {
    'ratelimit-policy': decisions
      .map((d) => `"${d.policy.name}";q=${d.policy.limit};w=${d.policy.windowSeconds}`)
      .join(', '),
    ratelimit: `"${tightest.policy.name}";r=${tightest.remaining};t=${tightest.resetSeconds}`,
  }
  const refused = decisions.filter((d) => !d.allowed)
  if (refused.length > 0) headers['retry-after'] = String(Math.max(...refused.map((d) => d.resetSeconds)))
  return headers
}
