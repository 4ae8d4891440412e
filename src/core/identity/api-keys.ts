import { UserError } from '../../shared/errors.js'
import * as repos from '../../state/db/repositories/index.js'
import { generateApiKey } from './api-key-format.js'
import { forbidden, notFound } from './auth-errors.js'
import type { IdentityDeps, RequestOrigin } from './identity-deps.js'
import { canGrant, parseScopes } from './scopes.js'

/** Who asks: a user acting on their own keys, an admin, or the CLI (full access to the database). */
export interface KeyActor {
  userId?: string | null
  /** admin scope: may act on every key. */
  admin: boolean
  /** Scopes the actor holds; keys they create cannot exceed them. */
  scopes: readonly string[]
  actor: string
  /**
   * The caller is an API key (not a signed-in user): without the admin scope it cannot create, list,
   * rotate or revoke keys, so a leaked inference key cannot mint itself successors or learn its
   * owner's other keys. Reading its own usage stays allowed.
   */
  viaApiKey?: boolean
}

/** Key management needs a signed-in user or an admin key (see KeyActor.viaApiKey). */
function requireKeyManager(actor: KeyActor): void {
  if (actor.viaApiKey && !actor.admin)
    throw forbidden(
      'API keys cannot manage API keys unless they have the admin scope: sign in (POST /auth/login) and use the access token.',
    )
}

export const CLI_ACTOR: KeyActor = { admin: true, scopes: ['admin'], actor: 'cli' }

/** An API key as lists show it: prefix and last 4 only, never the secret or its hash. */
export interface ApiKeyInfo {
  id: string
  name: string
  user_id: string | null
  prefix: string
  last4: string
  scopes: string[]
  rate_limit_per_min: number | null
  quota_requests: number | null
  quota_items: number | null
  quota_period: 'day' | 'month' | null
  expires_at: string | null
  revoked_at: string | null
  rotated_at: string | null
  grace_until: string | null
  last_used_at: string | null
  created_at: string
}

const iso = (d: Date | null) => (d ? d.toISOString() : null)

export function apiKeyInfo(row: repos.apiKeys.ApiKeyRow): ApiKeyInfo {
  return {
    id: row.id,
    name: row.name,
    user_id: row.user_id,
    prefix: row.prefix,
    last4: row.last4,
    scopes: row.scopes,
    rate_limit_per_min: row.rate_limit_per_min,
    quota_requests: row.quota_requests,
    quota_items: row.quota_items,
    quota_period: row.quota_period,
    expires_at: iso(row.expires_at),
    revoked_at: iso(row.revoked_at),
    rotated_at: iso(row.rotated_at),
    grace_until: iso(row.grace_until),
    last_used_at: iso(row.last_used_at),
    created_at: row.created_at.toISOString(),
  }
}

export interface NewKeyRequest {
  name: string
  scopes: readonly string[]
  /** Owner; defaults to the acting user. Only admins (and the CLI) may set another one. */
  userId?: string | null
  expiresAt?: Date | null
  rateLimitPerMin?: number | null
  quotaRequests?: number | null
  quotaItems?: number | null
  quotaPeriod?: 'day' | 'month' | null
}

/** The one answer that carries a secret: shown once, never again. */
export type CreatedKey = ApiKeyInfo & { key: string }

function checkName(name: string): string {
  const trimmed = name.trim()
  if (trimmed.length < 1 || trimmed.length > 100) {
    throw new UserError('INVALID_INPUT', 'A key name must have 1 to 100 characters.', {
      hint: 'Name keys after what uses them, e.g. "ci".',
    })
  }
  return trimmed
}

function checkLimits(request: NewKeyRequest): void {
  const positive = (v: number | null | undefined) => v == null || (Number.isInteger(v) && v > 0)
  if (
    !positive(request.rateLimitPerMin) ||
    !positive(request.quotaRequests) ||
    !positive(request.quotaItems)
  ) {
    throw new UserError('INVALID_INPUT', 'Rate limits and quotas must be positive whole numbers.', {
      hint: 'Leave them out for the server defaults.',
    })
  }
  if ((request.quotaRequests != null || request.quotaItems != null) && !request.quotaPeriod) {
    throw new UserError('INVALID_INPUT', 'A quota needs a period (day or month).', {
      hint: 'Add --quota-period day or month.',
    })
  }
  if (request.expiresAt && request.expiresAt.getTime() <= Date.now()) {
    throw new UserError('INVALID_INPUT', 'The expiry must be in the future.', {
      hint: 'Give a later date or leave it out.',
    })
  }
}

export async function createKey(
  deps: IdentityDeps,
  actor: KeyActor,
  request: NewKeyRequest,
  origin: RequestOrigin = {},
): Promise<CreatedKey> {
  requireKeyManager(actor)
  const scopes = parseScopes(request.scopes)
  if (!actor.admin && !canGrant(actor.scopes, scopes)) {
    throw forbidden('A key cannot have scopes its creator does not hold.')
  }
  const owner = request.userId === undefined ? (actor.userId ?? null) : request.userId
  if (!actor.admin && owner !== actor.userId)
    throw forbidden('Only administrators create keys for other users.')
  checkLimits(request)
  const secret = generateApiKey()
  const row = await repos.apiKeys.createApiKey(deps.db, {
    userId: owner,
    name: checkName(request.name),
    prefix: secret.prefix,
    last4: secret.last4,
    keyHash: secret.hash,
    scopes,
    rateLimitPerMin: request.rateLimitPerMin ?? null,
    quotaRequests: request.quotaRequests ?? null,
    quotaItems: request.quotaItems ?? null,
    quotaPeriod: request.quotaPeriod ?? null,
    expiresAt: request.expiresAt ?? null,
  })
  deps.events?.('apikey.create')
  await repos.audit.recordAudit(deps.db, {
    action: 'apikey.create',
    actorUserId: actor.userId ?? null,
    actor: actor.actor,
    target: `apikey:${row.id}`,
    ip: origin.ip ?? null,
    details: { scopes, owner },
  })
  return { ...apiKeyInfo(row), key: secret.key }
}

/** A key the actor may manage: their own, or any for admins; others look absent (no existence leak). */
async function ownedKey(deps: IdentityDeps, actor: KeyActor, id: string): Promise<repos.apiKeys.ApiKeyRow> {
  const row = /^[0-9a-f-]{36}$/i.test(id) ? await repos.apiKeys.findApiKeyById(deps.db, id) : undefined
  if (!row || (!actor.admin && row.user_id !== actor.userId)) throw notFound(`API key ${id}`)
  return row
}

export async function listKeys(
  deps: IdentityDeps,
  actor: KeyActor,
  options: { userId?: string; includeRevoked?: boolean } = {},
): Promise<ApiKeyInfo[]> {
  requireKeyManager(actor)
  const userId = actor.admin ? options.userId : (actor.userId ?? undefined)
  if (!actor.admin && !userId) return []
  const rows = await repos.apiKeys.listApiKeys(deps.db, {
    userId,
    includeRevoked: options.includeRevoked ?? false,
  })
  return rows.map(apiKeyInfo)
}

/**
 * A new secret for the same key id. The old secret keeps working for the grace period (default 24 h)
 * so clients switch without downtime; usage and limits stay with the id.
 */
export async function rotateKey(
  deps: IdentityDeps,
  actor: KeyActor,
  id: string,
  options: { graceSeconds?: number } = {},
  origin: RequestOrigin = {},
): Promise<CreatedKey> {
  requireKeyManager(actor)
  const existing = await ownedKey(deps, actor, id)
  if (existing.revoked_at) throw notFound(`API key ${id}`)
  const grace = options.graceSeconds ?? deps.config.auth.api_key_grace_s
  if (!Number.isInteger(grace) || grace < 0) {
    throw new UserError('INVALID_INPUT', 'The grace period must be a whole number of seconds ≥ 0.', {
      hint: 'Use 0 to stop the old secret at once.',
    })
  }
  const secret = generateApiKey()
  const row = await repos.apiKeys.rotateApiKey(deps.db, existing.id, {
    keyHash: secret.hash,
    last4: secret.last4,
    graceUntil: new Date(Date.now() + grace * 1000),
  })
  deps.apiKeyCache?.evict(existing.id)
  if (!row) throw notFound(`API key ${id}`)
  deps.events?.('apikey.rotate')
  await repos.audit.recordAudit(deps.db, {
    action: 'apikey.rotate',
    actorUserId: actor.userId ?? null,
    actor: actor.actor,
    target: `apikey:${row.id}`,
    ip: origin.ip ?? null,
    details: { grace_seconds: grace },
  })
  return { ...apiKeyInfo(row), key: secret.key }
}

/** Revokes at once; every replica checks the database on each request, so it holds everywhere. */
export async function revokeKey(
  deps: IdentityDeps,
  actor: KeyActor,
  id: string,
  origin: RequestOrigin = {},
): Promise<ApiKeyInfo> {
  requireKeyManager(actor)
  const existing = await ownedKey(deps, actor, id)
  const row = (await repos.apiKeys.revokeApiKey(deps.db, existing.id)) ?? existing
  // This daemon forgets the key at once; the others hear of it on the change channel.
  deps.apiKeyCache?.evict(existing.id)
  deps.events?.('apikey.revoke')
  await repos.audit.recordAudit(deps.db, {
    action: 'apikey.revoke',
    actorUserId: actor.userId ?? null,
    actor: actor.actor,
    target: `apikey:${row.id}`,
    ip: origin.ip ?? null,
  })
  return apiKeyInfo(row)
}

export interface KeyUsage {
  id: string
  since: string
  totals: repos.usage.UsageTotals
  hours: Array<{ hour: string; requests: number; errors: number; tokens: number; items: number }>
  quota: {
    period: 'day' | 'month'
    requests: number | null
    items: number | null
    used_requests: number
    used_items: number
  } | null
  last_used_at: string | null
}

/** Start of the current quota period (UTC). */
export function periodStart(period: 'day' | 'month', now = new Date()): Date {
  return period === 'day'
    ? new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()))
    : new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1))
}

/** Seconds until the current quota period ends (UTC). */
export function secondsToPeriodEnd(period: 'day' | 'month', now = new Date()): number {
  const start = periodStart(period, now)
  const end =
    period === 'day'
      ? new Date(start.getTime() + 86_400_000)
      : new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1))
  return Math.max(1, Math.ceil((end.getTime() - now.getTime()) / 1000))
}

export async function keyUsage(
  deps: IdentityDeps,
  actor: KeyActor,
  id: string,
  options: { since?: Date } = {},
): Promise<KeyUsage> {
  const row = await ownedKey(deps, actor, id)
  const since = options.since ?? new Date(Date.now() - 30 * 86_400_000)
  const hours = await repos.usage.usageByHour(deps.db, row.id, { since })
  const totals = await repos.usage.usageTotals(deps.db, row.id, since)
  let quota: KeyUsage['quota'] = null
  if (row.quota_period) {
    const used = await repos.usage.usageTotals(deps.db, row.id, periodStart(row.quota_period))
    quota = {
      period: row.quota_period,
      requests: row.quota_requests,
      items: row.quota_items,
      used_requests: used.requests,
      used_items: used.items,
    }
  }
  return {
    id: row.id,
    since: since.toISOString(),
    totals,
    hours: hours.map((h) => ({
      hour: h.hour.toISOString(),
      requests: h.requests,
      errors: h.errors,
      tokens: h.tokens,
      items: h.items,
    })),
    quota,
    last_used_at: iso(row.last_used_at),
  }
}
