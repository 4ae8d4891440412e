import type { Queryable } from '../pool.js'

export type EmailTokenPurpose = 'verify_email' | 'reset_password'

/** A row of `email_tokens`: a single-use code or link, stored hashed. */
export interface EmailTokenRow {
  id: string
  user_id: string
  purpose: EmailTokenPurpose
  token_hash: string
  created_at: Date
  expires_at: Date
  used_at: Date | null
}

const COLUMNS = 'id, user_id, purpose, token_hash, created_at, expires_at, used_at'

export async function createEmailToken(
  db: Queryable,
  token: { userId: string; purpose: EmailTokenPurpose; tokenHash: string; expiresAt: Date },
): Promise<EmailTokenRow> {
  const { rows } = await db.query<EmailTokenRow>(
    `INSERT INTO email_tokens (user_id, purpose, token_hash, expires_at) VALUES ($1, $2, $3, $4) RETURNING ${COLUMNS}`,
    [token.userId, token.purpose, token.tokenHash, token.expiresAt],
  )
  return rows[0]
}

/**
 * Uses a token once: marks it used only if it is unused, unexpired and for this purpose, in one
 * statement, so a code can never be redeemed twice, not even by two requests at the same moment.
 */
export async function consumeEmailToken(
  db: Queryable,
  tokenHash: string,
  purpose: EmailTokenPurpose,
): Promise<EmailTokenRow | undefined> {
  const { rows } = await db.query<EmailTokenRow>(
    `UPDATE email_tokens SET used_at = now()
      WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now() RETURNING ${COLUMNS}`,
    [tokenHash, purpose],
  )
  return rows[0]
}

/** Voids a user's outstanding tokens of one purpose (a new code replaces the old ones). */
export async function invalidateEmailTokens(
  db: Queryable,
  userId: string,
  purpose: EmailTokenPurpose,
): Promise<number> {
  const { rowCount } = await db.query(
    'UPDATE email_tokens SET used_at = now() WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL',
    [userId, purpose],
  )
  return rowCount ?? 0
}

export async function deleteExpiredEmailTokens(db: Queryable, before: Date = new Date()): Promise<number> {
  const { rowCount } = await db.query('DELETE FROM email_tokens WHERE expires_at < $1', [before])
  return rowCount ?? 0
}

/** A user's e-mail tokens for the GDPR export: what was sent and when, never the token hash. */
export async function listEmailTokensOfUser(
  db: Queryable,
  userId: string,
): Promise<Pick<EmailTokenRow, 'id' | 'purpose' | 'created_at' | 'expires_at' | 'used_at'>[]> {
  const { rows } = await db.query<
    Pick<EmailTokenRow, 'id' | 'purpose' | 'created_at' | 'expires_at' | 'used_at'>
  >(
    'SELECT id, purpose, created_at, expires_at, used_at FROM email_tokens WHERE user_id = $1 ORDER BY created_at',
    [userId],
  )
  return rows
}
