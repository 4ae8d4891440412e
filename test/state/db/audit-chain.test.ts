import { beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { verifyAuditChain } from '../../../src/core/identity/audit-chain.js'
import type { DatabasePool } from '../../../src/state/db/pool.js'
import { audit, users } from '../../../src/state/db/repositories/index.js'
import { databaseTargets, useMigratedDatabase } from './database-targets.js'

/** Runs `sql` with the append-only triggers off, as someone with the table owner's rights could. */
async function behindTheTriggers(pool: DatabasePool, sql: string, values: unknown[] = []): Promise<void> {
  await pool.transaction(async (client) => {
    await client.query('ALTER TABLE audit_log DISABLE TRIGGER USER')
    await client.query(sql, values)
    await client.query('ALTER TABLE audit_log ENABLE TRIGGER USER')
  })
}

describe.each(databaseTargets())('the audit log hash chain against the %s database', (kind) => {
  const database = useMigratedDatabase(kind)
  let pool: DatabasePool
  beforeAll(() => {
    pool = database.pool
  })
  beforeEach(async () => {
    // A fresh chain for each test: retention of everything leaves an anchor, not an empty log.
    await audit.deleteAuditBefore(pool, new Date(Date.now() + 3_600_000))
  })

  const write = (n: number, extra: Partial<audit.AuditEvent> = {}) =>
    Promise.all(
      Array.from({ length: n }, (_, i) =>
        audit.recordAudit(pool, {
          action: 'apikey.create',
          actor: 'cli',
          target: `key:${i}`,
          ip: '10.1.2.3',
          details: { n: i, note: 'ünïcode ✓' },
          ...extra,
        }),
      ),
    )

  it('links entries written concurrently into one gap-free chain that verifies', async () => {
    const before = await verifyAuditChain(pool)
    await write(25)
    const report = await verifyAuditChain(pool)
    expect(report, JSON.stringify(report.broken)).toMatchObject({ ok: true, entries: 25 })
    expect(BigInt(report.head?.seq ?? 0) - BigInt(before.start.seq)).toBe(25n)
    expect(report.head?.hash).toMatch(/^[0-9a-f]{64}$/)
  })

  it('refuses UPDATE, DELETE and TRUNCATE of entries', async () => {
    const [entry] = await write(1)
    await expect(
      pool.query("UPDATE audit_log SET action = 'nothing' WHERE id = $1", [entry.id]),
    ).rejects.toThrow(/append-only: UPDATE is refused/)
    await expect(
      pool.query("UPDATE audit_log SET ip = NULL, actor = 'erased-user' WHERE id = $1", [entry.id]),
    ).rejects.toThrow(/append-only: UPDATE is refused/)
    await expect(pool.query('DELETE FROM audit_log WHERE id = $1', [entry.id])).rejects.toThrow(
      /append-only: DELETE is refused/,
    )
    await expect(pool.query('TRUNCATE audit_log')).rejects.toThrow(/append-only: TRUNCATE is refused/)
    expect((await verifyAuditChain(pool)).ok).toBe(true)
  })

  it('names the first entry changed, removed or slipped in behind the triggers', async () => {
    await write(5)
    const rows = (await audit.readAuditChain(pool, '0', 1_000_000)).slice(-5)
    const [, second, third] = rows.map((r) => r.seq)
    const last = rows[4].seq
    const good = await verifyAuditChain(pool)
    expect(good.ok).toBe(true)
    const head = `${good.head?.seq}:${good.head?.hash}`

    await behindTheTriggers(pool, "UPDATE audit_log SET target = 'key:evil' WHERE seq = $1", [third])
    let report = await verifyAuditChain(pool)
    expect(report).toMatchObject({
      ok: false,
      broken: { seq: third, problem: `entry ${third} was changed after it was written` },
    })
    await behindTheTriggers(pool, 'UPDATE audit_log SET target = $2 WHERE seq = $1', [third, rows[2].target])
    expect((await verifyAuditChain(pool)).ok).toBe(true)

    await behindTheTriggers(pool, "UPDATE audit_log SET ip = '10.9.9.9' WHERE seq = $1", [second])
    report = await verifyAuditChain(pool)
    expect(report.broken?.problem).toBe(`who acted in entry ${second} (actor, user or address) was changed`)
    await behindTheTriggers(pool, "UPDATE audit_log SET ip = '10.1.2.3' WHERE seq = $1", [second])

    // Removing the last entry leaves a valid chain: only a head kept elsewhere shows it.
    await behindTheTriggers(pool, 'DELETE FROM audit_log WHERE seq = $1', [last])
    expect((await verifyAuditChain(pool)).ok).toBe(true)
    report = await verifyAuditChain(pool, head)
    expect(report.ok).toBe(false)
    expect(report.broken?.problem).toMatch(
      /the head recorded earlier, is gone: entries were removed from the end/,
    )

    await behindTheTriggers(pool, 'DELETE FROM audit_log WHERE seq = $1', [second])
    report = await verifyAuditChain(pool)
    expect(report.broken).toMatchObject({
      seq: third,
      problem: `entry ${third} follows entry ${BigInt(second) - 1n}: 1 entry is missing`,
    })
  })

  it('erasure of a user keeps the chain verifiable and leaves nothing that names them', async () => {
    const user = await users.createUser(pool, { email: 'erin@example.com' })
    await write(2, { actorUserId: user.id, actor: 'erin@example.com', ip: '192.0.2.7' })
    await write(1)
    expect(await audit.anonymiseAuditActor(pool, user.id)).toBe(2)
    const { rows } = await pool.query(
      "SELECT actor, ip, subject_salt FROM audit_log WHERE actor = 'erased-user' OR actor LIKE 'erin%'",
    )
    expect(rows).toEqual([
      { actor: 'erased-user', ip: null, subject_salt: null },
      { actor: 'erased-user', ip: null, subject_salt: null },
    ])
    expect((await verifyAuditChain(pool)).ok).toBe(true)
    // Deleting a user without the erasure routine (ON DELETE SET NULL) erases their entries the same way.
    const other = await users.createUser(pool, { email: 'otto@example.com' })
    await write(1, { actorUserId: other.id, actor: 'otto@example.com' })
    await users.deleteUser(pool, other.id)
    const dump = JSON.stringify((await pool.query('SELECT * FROM audit_log')).rows)
    expect(dump).not.toMatch(/otto|erin|192\.0\.2\.7/)
    expect((await verifyAuditChain(pool)).ok).toBe(true)
  })

  it('retention removes the oldest entries as a prefix; the rest verifies from the anchor and new entries link on', async () => {
    await write(3)
    const cut = new Date(Date.now() + 1000)
    await new Promise((r) => setTimeout(r, 1100))
    await write(2)
    expect(await audit.deleteAuditBefore(pool, cut)).toBe(3)
    const anchor = await audit.auditChainAnchor(pool)
    const report = await verifyAuditChain(pool)
    expect(report).toMatchObject({ ok: true, entries: 2, start: anchor })
    await write(1)
    expect(await verifyAuditChain(pool)).toMatchObject({ ok: true, entries: 3 })
    await behindTheTriggers(pool, 'UPDATE audit_chain_anchor SET hash = sha256(hash)')
    expect((await verifyAuditChain(pool)).broken?.problem).toMatch(
      /does not link to the hash of the entry before it/,
    )
    await behindTheTriggers(pool, 'UPDATE audit_chain_anchor SET seq = $1, hash = $2', [
      anchor?.seq,
      Buffer.from(anchor?.hash ?? '', 'hex'),
    ])
    expect((await verifyAuditChain(pool)).ok).toBe(true)
  })
})
