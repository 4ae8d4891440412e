import type { Queryable } from '../pool.js'

/** A row of `refresh_tokens`. */
export interface RefreshTokenRow {
  id: string
  user_id: string
  family_id: string
  token_hash: string
  parent_id: string | null
  created_at: Date
  expires_at: Date
  used_at: Date | null
  revoked_at: Date | null
  ip: string | null
  user_agent: string | null
}

export interface NewRefreshToken {
  userId: string
  /** Shared by every token of one login; omit for a new login (a fresh family is generated). */
  familyId?: string
  tokenHash: string
  parentId?: string | null
  expiresAt: Date
  ip?: string | null
  userAgent?: string | null
}

const COLUMNS =
  'id, user_id, family_id, token_hash, parent_id, created_at, expires_at, used_at, revoked_at, host(ip) AS ip, user_agent'

export async function insertRefreshToken(db: Queryable, token: NewRefreshToken): Promise<RefreshTokenRow> {
  const { rows } = await db.query<RefreshTokenRow>(
    `INSERT INTO refresh_tokens (user_id, family_id, token_hash, parent_id, expires_at, ip, user_agent)
     VALUES ($1, coalesce($2::uuid, gen_random_uuid()), $3, $4, $5, $6, $7) RETURNING ${COLUMNS}`,
    [
      token.userId,
      token.familyId ?? null,
      token.tokenHash,
      token.parentId ?? null,
      token.expiresAt,
      token.ip ?? null,
      token.userAgent ?? null,
    ],
  )
  return rows[0]
}

export async function findRefreshTokenByHash(
  db: Queryable,
  tokenHash: string,
): Promise<RefreshTokenRow | undefined> {
  const { rows } = await db.query<RefreshTokenRow>(
    `SELECT ${COLUMNS} FROM refresh_tokens WHERE token_hash = $1`,
    [tokenHash],
  )
  return rows[0]
}

/**
 * Marks a token used if, and only if, it is still usable (unused, unrevoked, unexpired), in one
 * statement: of two concurrent refreshes with the same token exactly one wins; the loser gets
 * undefined and must treat it as reuse (RFC 9700 §4.14: revoke the family).
 */
export async function claimRefreshToken(
  db: Queryable,
  tokenHash: string,
): Promise<RefreshTokenRow | undefined> {
  const { rows } = await db.query<RefreshTokenRow>(
    `UPDATE refresh_tokens SET used_at = now()
      WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
      RETURNING ${COLUMNS}`,
    [tokenHash],
  )
  return rows[0]
}

/** Revokes every token of a family (reuse detected, or logout); returns how many were still live. */
export async function revokeFamily(db: Queryable, familyId: string): Promise<number> {
  const { rowCount } = await db.query(
    'UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL',
    [familyId],
  )
  return rowCount ?? 0
}

/** Revokes all sessions of a user (password change, disable, delete). */
export async function revokeAllForUser(db: Queryable, userId: string): Promise<number> {
  const { rowCount } = await db.query(
    'UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL',
    [userId],
  )
  return rowCount ?? 0
}

/** The user's live sessions: the newest unused, unrevoked, unexpired token of each family. */
export async function listActiveSessions(db: Queryable, userId: string): Promise<RefreshTokenRow[]> {
  const { rows } = await db.query<RefreshTokenRow>(
    `SELECT ${COLUMNS} FROM refresh_tokens
      WHERE user_id = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()
      ORDER BY created_at DESC`,
    [userId],
  )
  return rows
}

/** Housekeeping: drops tokens that expired before the given time. */
export async function deleteExpiredRefreshTokens(db: Queryable, before: Date = new Date()): Promise<number> {
  const { rowCount } = await db.query('DELETE FROM refresh_tokens WHERE expires_at < $1', [before])
  return rowCount ?? 0
}
