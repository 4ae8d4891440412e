import type { Queryable } from '../pool.js'

/** A row of `audit_log`; id is a bigint, kept as a string. */
export interface AuditRow {
  id: string
  at: Date
  actor_user_id: string | null
  actor: string | null
  action: string
  target: string | null
  ip: string | null
  details: Record<string, unknown>
}

export interface AuditEvent {
  action: string
  actorUserId?: string | null
  /** Who acted, as shown in `helix audit` (e.g. an e-mail, `apikey:<id>`, `cli`). */
  actor?: string | null
  target?: string | null
  ip?: string | null
  /** Never secrets: no passwords, tokens or keys. */
  details?: Record<string, unknown>
}

const COLUMNS = 'id::text AS id, at, actor_user_id, actor, action, target, host(ip) AS ip, details'

export async function recordAudit(db: Queryable, event: AuditEvent): Promise<AuditRow> {
  const { rows } = await db.query<AuditRow>(
    `INSERT INTO audit_log (actor_user_id, actor, action, target, ip, details) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
    [
      event.actorUserId ?? null,
      event.actor ?? null,
      event.action,
      event.target ?? null,
      event.ip ?? null,
      event.details ?? {},
    ],
  )
  return rows[0]
}

/** Newest first, filtered by time, actor and action prefix (e.g. "apikey." for every key event). */
export async function listAudit(
  db: Queryable,
  filter: { since?: Date; actorUserId?: string; actionPrefix?: string; limit?: number } = {},
): Promise<AuditRow[]> {
  const { rows } = await db.query<AuditRow>(
    `SELECT ${COLUMNS} FROM audit_log
      WHERE ($1::timestamptz IS NULL OR at >= $1) AND ($2::uuid IS NULL OR actor_user_id = $2)
        AND ($3::text IS NULL OR starts_with(action, $3))
      ORDER BY at DESC, id DESC LIMIT $4`,
    [filter.since ?? null, filter.actorUserId ?? null, filter.actionPrefix ?? null, filter.limit ?? 1000],
  )
  return rows
}

/** GDPR erasure: the user's entries stay (what happened) but no longer say who or from where. */
export async function anonymiseAuditActor(db: Queryable, userId: string): Promise<number> {
  const { rowCount } = await db.query(
    "UPDATE audit_log SET actor_user_id = NULL, actor = 'erased-user', ip = NULL WHERE actor_user_id = $1",
    [userId],
  )
  return rowCount ?? 0
}

/** Retention: drops entries older than the given time. */
export async function deleteAuditBefore(db: Queryable, before: Date): Promise<number> {
  const { rowCount } = await db.query('DELETE FROM audit_log WHERE at < $1', [before])
  return rowCount ?? 0
}
