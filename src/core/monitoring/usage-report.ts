import { UserError } from '../../shared/errors.js'
import type { ApiKeyRow } from '../../state/db/repositories/api-keys.js'
import * as repos from '../../state/db/repositories/index.js'
import type { UsageTotals } from '../../state/db/repositories/usage.js'
import { isUuid } from '../../state/db/repositories/uuid.js'
import { periodStart, secondsToPeriodEnd } from '../identity/api-keys.js'
import { forbidden, notFound } from '../identity/auth-errors.js'
import type { IdentityDeps } from '../identity/identity-deps.js'

/** Who reads usage: an administrator sees every key, anyone else the keys they own (or the one they are). */
export interface UsageViewer {
  admin: boolean
  userId?: string
  /** The calling key, for a service key (no owner) that reads its own usage. */
  keyId?: string
}

export interface UsageQuery {
  /** From this hour on (inclusive); default 30 days before `until`. */
  since?: Date
  /** Up to this time (exclusive); default now. */
  until?: Date
  keyId?: string
  /** Keys of this user (administrators only). */
  userId?: string
  includeHours?: boolean
  includeRevoked?: boolean
}

/** A key's quota in its current period, with what the usage counters say is used. */
export interface QuotaState {
  period: 'day' | 'month'
  /** null: no limit on that count. */
  requests: number | null
  items: number | null
  usedRequests: number
  usedItems: number
  resetsAt: Date
}

export interface KeyUsageReport {
  keyId: string
  name: string
  userId: string | null
  prefix: string
  last4: string
  scopes: string[]
  revoked: boolean
  lastUsedAt: Date | null
  usage: UsageTotals
  quota: QuotaState | null
  /** Hour by hour, oldest first (when asked for). */
  hours: { hour: Date; usage: UsageTotals }[]
}

export interface UsageReport {
  since: Date
  until: Date
  keys: KeyUsageReport[]
  totals: UsageTotals
}

/** The default span of a usage report, as `helix apikeys` usage reads it. */
const DEFAULT_SPAN_MS = 30 * 86_400_000

const zero = (): UsageTotals => ({ requests: 0, errors: 0, tokens: 0, items: 0 })

function add(into: UsageTotals, more: UsageTotals): UsageTotals {
  into.requests += more.requests
  into.errors += more.errors
  into.tokens += more.tokens
  into.items += more.items
  return into
}

/** The quota of a key in the current period, or null when it has none. */
export async function quotaState(deps: Pick<IdentityDeps, 'db'>, row: ApiKeyRow): Promise<QuotaState | null> {
  if (!row.quota_period) return null
  const start = periodStart(row.quota_period)
  const used = await repos.usage.usageTotals(deps.db, row.id, start)
  return {
    period: row.quota_period,
    requests: row.quota_requests,
    items: row.quota_items,
    usedRequests: used.requests,
    usedItems: used.items,
    resetsAt: new Date(Date.now() + secondsToPeriodEnd(row.quota_period) * 1000),
  }
}

async function visibleKeys(deps: IdentityDeps, viewer: UsageViewer, query: UsageQuery): Promise<ApiKeyRow[]> {
  const includeRevoked = query.includeRevoked ?? false
  if (query.keyId !== undefined) {
    const row = await repos.apiKeys.findApiKeyById(deps.db, query.keyId)
    const own =
      row && (viewer.admin || (viewer.userId ? row.user_id === viewer.userId : row.id === viewer.keyId))
    // A key that is not the viewer's reads as absent, so ids of other people's keys cannot be probed.
    if (!row || !own) throw notFound(`API key ${query.keyId}`)
    return [row]
  }
  if (viewer.admin) return repos.apiKeys.listApiKeys(deps.db, { userId: query.userId, includeRevoked })
  if (query.userId !== undefined && query.userId !== viewer.userId)
    throw forbidden('Only administrators read the usage of other users.')
  if (viewer.userId) return repos.apiKeys.listApiKeys(deps.db, { userId: viewer.userId, includeRevoked })
  if (viewer.keyId) {
    const row = await repos.apiKeys.findApiKeyById(deps.db, viewer.keyId)
    return row ? [row] : []
  }
  return []
}

/**
 * Usage counters (requests, errors, tokens, items) per API key over a span of whole hours, with each
 * key's quota in its current period. Counters buffered by this daemon are written first, so its own
 * traffic is counted up to now; other replicas' buffers reach the database within their flush interval.
 */
export async function usageReport(
  deps: IdentityDeps,
  viewer: UsageViewer,
  query: UsageQuery = {},
): Promise<UsageReport> {
  const until = query.until ?? new Date()
  const since = query.since ?? new Date(until.getTime() - DEFAULT_SPAN_MS)
  if (since.getTime() >= until.getTime()) {
    throw new UserError('INVALID_INPUT', 'since must be before until.', {
      hint: 'Give RFC 3339 times, e.g. since 2025-01-01T00:00:00Z.',
    })
  }
  if (query.userId !== undefined && !isUuid(query.userId)) {
    throw new UserError('INVALID_INPUT', `user_id '${query.userId}' is not a user id (a UUID).`)
  }
  await deps.flushUsage?.()
  const rows = await visibleKeys(deps, viewer, query)
  const keys = await Promise.all(
    rows.map(async (row): Promise<KeyUsageReport> => {
      const hours = await repos.usage.usageByHour(deps.db, row.id, { since, until })
      const usage = hours.reduce((sum, h) => add(sum, h), zero())
      return {
        keyId: row.id,
        name: row.name,
        userId: row.user_id,
        prefix: row.prefix,
        last4: row.last4,
        scopes: row.scopes,
        revoked: row.revoked_at !== null,
        lastUsedAt: row.last_used_at,
        usage,
        quota: await quotaState(deps, row),
        hours: query.includeHours
          ? hours.map((h) => ({
              hour: h.hour,
              usage: { requests: h.requests, errors: h.errors, tokens: h.tokens, items: h.items },
            }))
          : [],
      }
    }),
  )
  return { since, until, keys, totals: keys.reduce((sum, k) => add(sum, k.usage), zero()) }
}
