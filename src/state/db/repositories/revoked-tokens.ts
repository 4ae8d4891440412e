import type { Queryable } from '../pool.js'

/** A row of `revoked_tokens`: an access token (by JWT id) refused until it expires. */
export interface RevokedTokenRow {
  jti: string
  user_id: string | null
  expires_at: Date
  revoked_at: Date
  reason: string | null
}

/** Idempotent: revoking a jti twice keeps the first record. */
export async function revokeAccessToken(
  db: Queryable,
  token: { jti: string; userId?: string | null; expiresAt: Date; reason?: string },
): Promise<void> {
  await db.query(
    'INSERT INTO revoked_tokens (jti, user_id, expires_at, reason) VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING',
    [token.jti, token.userId ?? null, token.expiresAt, token.reason ?? null],
  )
}

export async function isAccessTokenRevoked(db: Queryable, jti: string): Promise<boolean> {
  const { rowCount } = await db.query('SELECT 1 FROM revoked_tokens WHERE jti = $1', [jti])
  return rowCount === 1
}

/** Revocations still in force (not yet expired), for warming a cache; newest first. */
export async function listActiveRevocations(db: Queryable, since?: Date): Promise<RevokedTokenRow[]> {
  const { rows } = await db.query<RevokedTokenRow>(
    `SELECT jti, user_id, expires_at, revoked_at, reason FROM revoked_tokens
      WHERE expires_at > now() AND ($1::timestamptz IS NULL OR revoked_at >= $1) ORDER BY revoked_at DESC`,
    [since ?? null],
  )
  return rows
}

/** Expired revocations are useless (the exp claim refuses the token): drop them. */
export async function purgeExpiredRevocations(db: Queryable): Promise<number> {
  const { rowCount } = await db.query('DELETE FROM revoked_tokens WHERE expires_at <= now()')
  return rowCount ?? 0
}
