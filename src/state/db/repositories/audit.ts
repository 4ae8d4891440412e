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

/**
 * GDPR erasure: the user's entries stay (what happened) but no longer say who or from where; the
 * hash chain still verifies (migrations/0004_audit_chain.sql).
 */
export async function anonymiseAuditActor(db: Queryable, userId: string): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT helix_audit_erase_actor($1)::text AS n', [userId])
  return Number(rows[0].n)
}

/**
 * Retention: drops the entries before the first one at or after `before` (the oldest part of the
 * chain) and records where the remaining chain starts.
 */
export async function deleteAuditBefore(db: Queryable, before: Date): Promise<number> {
  const { rows } = await db.query<{ n: string }>('SELECT helix_audit_purge_before($1)::text AS n', [before])
  return Number(rows[0].n)
}

/** One entry as the chain hashes it: every field as text, the hashes as hex. */
export interface AuditChainRow {
  seq: string
  id: string
  at_us: string
  action: string
  target: string | null
  details: string
  actor_user_id: string | null
  actor: string | null
  ip: string | null
  subject_salt: string | null
  subject_digest: string
  prev_hash: string
  hash: string
}

/** Where the chain starts after retention removed its oldest entries; undefined when none were removed. */
export async function auditChainAnchor(db: Queryable): Promise<{ seq: string; hash: string } | undefined> {
  const { rows } = await db.query<{ seq: string; hash: string }>(
    "SELECT seq::text AS seq, encode(hash, 'hex') AS hash FROM audit_chain_anchor",
  )
  return rows[0]
}

/** Entries after position `afterSeq` in chain order, at most `limit` of them. */
export async function readAuditChain(
  db: Queryable,
  afterSeq: string,
  limit: number,
): Promise<AuditChainRow[]> {
  const { rows } = await db.query<AuditChainRow>(
    `SELECT seq::text AS seq, id::text AS id, ((extract(epoch FROM at) * 1000000)::bigint)::text AS at_us,
            action, target, details::text AS details, actor_user_id::text AS actor_user_id, actor,
            host(ip) AS ip, encode(subject_salt, 'hex') AS subject_salt,
            encode(subject_digest, 'hex') AS subject_digest, encode(prev_hash, 'hex') AS prev_hash,
            encode(hash, 'hex') AS hash
       FROM audit_log WHERE audit_log.seq > $1::bigint ORDER BY audit_log.seq LIMIT $2`,
    [afterSeq, limit],
  )
  return rows
}
