import type { Queryable } from '../pool.js'

/** A row of `request_log`: metadata of one request, never its payload. */
export interface RequestLogRow {
  id: string
  at: Date
  request_id: string
  user_id: string | null
  api_key_id: string | null
  method: string
  route: string
  model: string | null
  model_version: string | null
  status: number
  duration_ms: number
  items: number
  tokens: number
  ip: string | null
  user_agent: string | null
}

export interface RequestLogEntry {
  requestId: string
  userId?: string | null
  apiKeyId?: string | null
  method: string
  /** The route pattern (/v2/models/:name/infer), not the raw URL with its query string. */
  route: string
  model?: string | null
  modelVersion?: string | null
  status: number
  durationMs: number
  items?: number
  tokens?: number
  ip?: string | null
  userAgent?: string | null
  at?: Date
}

const COLUMNS = `id::text AS id, at, request_id, user_id, api_key_id, method, route, model, model_version, status, duration_ms,
  items, tokens, host(ip) AS ip, user_agent`

export async function logRequest(db: Queryable, entry: RequestLogEntry): Promise<void> {
  await db.query(
    `INSERT INTO request_log (at, request_id, user_id, api_key_id, method, route, model, model_version, status, duration_ms,
                              items, tokens, ip, user_agent)
     VALUES (coalesce($1, now()), $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
    [
      entry.at ?? null,
      entry.requestId,
      entry.userId ?? null,
      entry.apiKeyId ?? null,
      entry.method,
      entry.route,
      entry.model ?? null,
      entry.modelVersion ?? null,
      entry.status,
      entry.durationMs,
      entry.items ?? 0,
      entry.tokens ?? 0,
      entry.ip ?? null,
      entry.userAgent ?? null,
    ],
  )
}

/** A user's requests, newest first, directly or through their keys (GDPR export). */
export async function listRequestsOfUser(
  db: Queryable,
  userId: string,
  options: { since?: Date; limit?: number } = {},
): Promise<RequestLogRow[]> {
  const { rows } = await db.query<RequestLogRow>(
    `SELECT ${COLUMNS} FROM request_log
      WHERE (user_id = $1 OR api_key_id IN (SELECT id FROM api_keys WHERE user_id = $1))
        AND ($2::timestamptz IS NULL OR at >= $2)
      ORDER BY at DESC, id DESC LIMIT $3`,
    [userId, options.since ?? null, options.limit ?? 10_000],
  )
  return rows
}

/** GDPR erasure: deletes the user's request records (call before deleting the user and their keys). */
export async function eraseRequestsOfUser(db: Queryable, userId: string): Promise<number> {
  const { rowCount } = await db.query(
    'DELETE FROM request_log WHERE user_id = $1 OR api_key_id IN (SELECT id FROM api_keys WHERE user_id = $1)',
    [userId],
  )
  return rowCount ?? 0
}

/** Retention: drops records older than the given time. */
export async function deleteRequestsBefore(db: Queryable, before: Date): Promise<number> {
  const { rowCount } = await db.query('DELETE FROM request_log WHERE at < $1', [before])
  return rowCount ?? 0
}
