import type { Queryable } from '../pool.js'
import { isUuid } from './uuid.js'

export type QuotaPeriod = 'day' | 'month'

/** A row of `api_keys` (bigint quotas as numbers). The secret itself is never stored. */
export interface ApiKeyRow {
  id: string
  user_id: string | null
  name: string
  prefix: string
  last4: string
  key_hash: string
  scopes: string[]
  models: string[] | null
  rate_limit_per_min: number | null
  quota_requests: number | null
  quota_items: number | null
  quota_period: QuotaPeriod | null
  expires_at: Date | null
  revoked_at: Date | null
  rotated_from_hash: string | null
  rotated_at: Date | null
  grace_until: Date | null
  last_used_at: Date | null
  created_at: Date
  updated_at: Date
}

export interface NewApiKey {
  userId?: string | null
  name: string
  prefix: string
  last4: string
  keyHash: string
  scopes: string[]
  models?: string[] | null
  rateLimitPerMin?: number | null
  quotaRequests?: number | null
  quotaItems?: number | null
  quotaPeriod?: QuotaPeriod | null
  expiresAt?: Date | null
}

const COLUMNS = `id, user_id, name, prefix, last4, key_hash, scopes, models, rate_limit_per_min,
  quota_requests::float8 AS quota_requests, quota_items::float8 AS quota_items, quota_period, expires_at, revoked_at,
  rotated_from_hash, rotated_at, grace_until, last_used_at, created_at, updated_at`

export async function createApiKey(db: Queryable, key: NewApiKey): Promise<ApiKeyRow> {
  const { rows } = await db.query<ApiKeyRow>(
    `INSERT INTO api_keys (user_id, name, prefix, last4, key_hash, scopes, models, rate_limit_per_min, quota_requests,
                           quota_items, quota_period, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING ${COLUMNS}`,
    [
      key.userId ?? null,
      key.name,
      key.prefix,
      key.last4,
      key.keyHash,
      key.scopes,
      key.models ?? null,
      key.rateLimitPerMin ?? null,
      key.quotaRequests ?? null,
      key.quotaItems ?? null,
      key.quotaPeriod ?? null,
      key.expiresAt ?? null,
    ],
  )
  return rows[0]
}

export async function findApiKeyById(db: Queryable, id: string): Promise<ApiKeyRow | undefined> {
  if (!isUuid(id)) return undefined
  const { rows } = await db.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE id = $1`, [id])
  return rows[0]
}

/**
 * The key whose current secret has this hash, or whose previous secret has it and is still inside
 * its rotation grace period (`via` says which). Revocation and expiry are the caller's to check.
 */
export async function findApiKeyByHash(
  db: Queryable,
  keyHash: string,
): Promise<(ApiKeyRow & { via: 'current' | 'previous' }) | undefined> {
  const { rows } = await db.query<ApiKeyRow & { via: 'current' | 'previous' }>(
    `SELECT ${COLUMNS}, CASE WHEN key_hash = $1 THEN 'current' ELSE 'previous' END AS via FROM api_keys
      WHERE key_hash = $1 OR (rotated_from_hash = $1 AND grace_until > now())`,
    [keyHash],
  )
  return rows[0]
}

export async function listApiKeys(
  db: Queryable,
  options: { userId?: string; includeRevoked?: boolean } = {},
): Promise<ApiKeyRow[]> {
  const { rows } = await db.query<ApiKeyRow>(
    `SELECT ${COLUMNS} FROM api_keys
      WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2 OR revoked_at IS NULL)
      ORDER BY created_at, id`,
    [options.userId ?? null, options.includeRevoked ?? false],
  )
  return rows
}

/**
 * A new secret for the same key id: the old hash moves to rotated_from_hash and keeps working until
 * graceUntil, so clients can switch without downtime; usage and limits stay on the key id.
 */
export async function rotateApiKey(
  db: Queryable,
  id: string,
  secret: { keyHash: string; last4: string; graceUntil: Date },
): Promise<ApiKeyRow | undefined> {
  if (!isUuid(id)) return undefined
  const { rows } = await db.query<ApiKeyRow>(
    `UPDATE api_keys SET rotated_from_hash = key_hash, key_hash = $2, last4 = $3, rotated_at = now(), grace_until = $4,
            updated_at = now()
      WHERE id = $1 AND revoked_at IS NULL RETURNING ${COLUMNS}`,
    [id, secret.keyHash, secret.last4, secret.graceUntil],
  )
  return rows[0]
}

/** Revokes at once: both the current and any previous secret stop working. */
export async function revokeApiKey(db: Queryable, id: string): Promise<ApiKeyRow | undefined> {
  if (!isUuid(id)) return undefined
  const { rows } = await db.query<ApiKeyRow>(
    `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()), grace_until = NULL, updated_at = now()
      WHERE id = $1 RETURNING ${COLUMNS}`,
    [id],
  )
  return rows[0]
}

export async function revokeApiKeysOfUser(db: Queryable, userId: string): Promise<number> {
  const { rowCount } = await db.query(
    'UPDATE api_keys SET revoked_at = now(), grace_until = NULL, updated_at = now() WHERE user_id = $1 AND revoked_at IS NULL',
    [userId],
  )
  return rowCount ?? 0
}

/** Stamps last_used_at; cheap enough per request, and skipped when it was set in the last minute. */
export async function touchApiKey(db: Queryable, id: string): Promise<void> {
  await db.query(
    `UPDATE api_keys SET last_used_at = now() WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
    [id],
  )
}
