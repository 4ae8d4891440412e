import type { Queryable } from '../../state/db/pool.js'

/**
 * Queries the identity services need beyond the DB layer's repositories.
 * Kept in one place so every SQL statement of this module is easy to review.
 */

export interface AccessTokenState {
  role: 'user' | 'admin'
  disabled: boolean
  /** Seconds since the epoch of the last password change, disable or delete bump; null if never. */
  passwordChangedAt: number | null
  jtiRevoked: boolean
  familyRevoked: boolean
}

/**
 * Everything that can void a valid-looking access token, in one round trip: the user is gone or
 * disabled, the password changed after the token was issued, the token's jti was revoked (logout),
 * or its refresh family was revoked (logout, refresh-token reuse). Revocations are read from
 * Postgres on every request so they hold at once on every replica.
 */
export async function accessTokenState(
  db: Queryable,
  token: { userId: string; jti: string; sessionId?: string },
): Promise<AccessTokenState | undefined> {
  const { rows } = await db.query<{
    role: 'user' | 'admin'
    disabled: boolean
    changed: number | null
    jti_revoked: boolean
    family_revoked: boolean
  }>(
    `SELECT u.role, u.disabled_at IS NOT NULL AS disabled,
            floor(extract(epoch FROM u.password_changed_at))::float8 AS changed,
            EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $2) AS jti_revoked,
            ($3::uuid IS NOT NULL AND EXISTS (
               SELECT 1 FROM refresh_tokens WHERE family_id = $3::uuid AND revoked_at IS NOT NULL)) AS family_revoked
       FROM users u WHERE u.id = $1::uuid`,
    [token.userId, token.jti, token.sessionId ?? null],
  )
  const row = rows[0]
  if (!row) return undefined
  return {
    role: row.role,
    disabled: row.disabled,
    passwordChangedAt: row.changed,
    jtiRevoked: row.jti_revoked,
    familyRevoked: row.family_revoked,
  }
}

/**
 * GDPR erasure keeps anonymised counters: the user's keys are revoked and detached (no owner, no
 * name) instead of deleted, so api_key_usage rows survive without pointing at a person.
 */
export async function detachApiKeysOfUser(db: Queryable, userId: string): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE api_keys SET user_id = NULL, name = 'erased', revoked_at = coalesce(revoked_at, now()), grace_until = NULL,
            rotated_from_hash = NULL, last_used_at = NULL, updated_at = now()
      WHERE user_id = $1::uuid`,
    [userId],
  )
  return rowCount ?? 0
}

/** The live (unrevoked, unexpired) family of a refresh token, for logout by refresh token. */
export async function familyOfRefreshHash(
  db: Queryable,
  tokenHash: string,
  userId: string,
): Promise<string | undefined> {
  const { rows } = await db.query<{ family_id: string }>(
    'SELECT family_id FROM refresh_tokens WHERE token_hash = $1 AND user_id = $2::uuid',
    [tokenHash, userId],
  )
  return rows[0]?.family_id
}
