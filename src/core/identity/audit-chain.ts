import { createHash } from 'node:crypto'
import { UserError } from '../../shared/errors.js'
import type { Queryable } from '../../state/db/pool.js'
import * as repos from '../../state/db/repositories/index.js'

/** The hash before the first entry of a chain that retention never cut. */
const GENESIS = '00'.repeat(32)
const SEPARATOR = '\x1f'
const PAGE = 5000

/** What `helix audit verify` found: the chain intact up to its head, or the first entry that breaks it. */
export interface AuditChainReport {
  ok: boolean
  /** Entries checked. */
  entries: number
  /** Where the checked chain starts: after the anchor retention left, or at the beginning. */
  start: { seq: string; hash: string }
  /** The newest entry: keep its hash somewhere else to detect a rewrite of the whole chain later. */
  head?: { seq: string; hash: string; at: string }
  /** The first entry that does not verify, and why. */
  broken?: { seq: string; id: string; problem: string }
}

const sha256 = (...parts: (Buffer | string)[]) => {
  const hash = createHash('sha256')
  for (const part of parts) hash.update(part)
  return hash.digest('hex')
}

/** SHA-256(salt || who acted and from where), as the database computes subject_digest. */
function subjectDigest(row: repos.audit.AuditChainRow, salt: string): string {
  const who = [row.actor_user_id ?? '', row.actor ?? '', row.ip ?? ''].join(SEPARATOR)
  return sha256(Buffer.from(salt, 'hex'), Buffer.from(who, 'utf8'))
}

/** SHA-256(previous hash || the entry's fields), as the database computes hash. */
function entryHash(row: repos.audit.AuditChainRow): string {
  const fields = [row.seq, row.id, row.at_us, row.action, row.target ?? '', row.details, row.subject_digest]
  return sha256(Buffer.from(row.prev_hash, 'hex'), Buffer.from(fields.join(SEPARATOR), 'utf8'))
}

/** Why one entry does not follow `previous`, or undefined when it does. */
function problemOf(
  row: repos.audit.AuditChainRow,
  previous: { seq: string; hash: string },
): string | undefined {
  if (BigInt(row.seq) !== BigInt(previous.seq) + 1n) {
    const missing = BigInt(row.seq) - BigInt(previous.seq) - 1n
    return `entry ${row.seq} follows entry ${previous.seq}: ${missing} ${missing === 1n ? 'entry is' : 'entries are'} missing`
  }
  if (row.prev_hash !== previous.hash)
    return `entry ${row.seq} does not link to the hash of the entry before it`
  if (row.subject_salt !== null && subjectDigest(row, row.subject_salt) !== row.subject_digest) {
    return `who acted in entry ${row.seq} (actor, user or address) was changed`
  }
  if (entryHash(row) !== row.hash) return `entry ${row.seq} was changed after it was written`
  return undefined
}

/**
 * Walks the audit log's hash chain (migrations/0004_audit_chain.sql) from its start to its newest
 * entry, recomputing every hash here rather than trusting the database's functions.
 */
export async function verifyAuditChain(db: Queryable, expectHead?: string): Promise<AuditChainReport> {
  const expected = expectHead === undefined ? undefined : parseHead(expectHead)
  const anchor = await repos.audit.auditChainAnchor(db)
  const start = anchor ?? { seq: '0', hash: GENESIS }
  let previous = start
  let entries = 0
  let head: AuditChainReport['head']
  let sawExpected = expected !== undefined && BigInt(expected.seq) <= BigInt(start.seq)
  if (sawExpected && expected?.seq === start.seq && expected.hash !== start.hash) {
    const problem = `entry ${expected.seq}, the head recorded earlier, had another hash: the chain was rewritten`
    return { ok: false, entries, start, broken: { seq: expected.seq, id: '', problem } }
  }
  for (;;) {
    const rows = await repos.audit.readAuditChain(db, previous.seq, PAGE)
    for (const row of rows) {
      let problem = problemOf(row, previous)
      if (!problem && expected?.seq === row.seq) {
        sawExpected = true
        if (expected.hash !== row.hash)
          problem = `entry ${row.seq}, the head recorded earlier, has another hash now: the chain was rewritten`
      }
      if (problem) {
        return {
          ok: false,
          entries,
          start,
          ...(head ? { head } : {}),
          broken: { seq: row.seq, id: row.id, problem },
        }
      }
      entries++
      previous = { seq: row.seq, hash: row.hash }
      head = { seq: row.seq, hash: row.hash, at: new Date(Number(BigInt(row.at_us) / 1000n)).toISOString() }
    }
    if (rows.length < PAGE) break
  }
  if (expected && !sawExpected) {
    const problem = `entry ${expected.seq}, the head recorded earlier, is gone: entries were removed from the end (the newest is ${previous.seq})`
    return {
      ok: false,
      entries,
      start,
      ...(head ? { head } : {}),
      broken: { seq: expected.seq, id: '', problem },
    }
  }
  return { ok: true, entries, start, ...(head ? { head } : {}) }
}

/** "SEQ:HASH" as `helix audit verify` prints a head. */
function parseHead(text: string): { seq: string; hash: string } {
  const match = /^(\d+):([0-9a-f]{64})$/i.exec(text.trim())
  if (!match) {
    throw new UserError(
      'INVALID_INPUT',
      `--expect-head must be SEQ:HASH as helix audit verify prints it, not "${text}".`,
      {
        hint: `For example --expect-head 41:${'9f'.repeat(32)}.`,
      },
    )
  }
  return { seq: match[1], hash: match[2].toLowerCase() }
}
