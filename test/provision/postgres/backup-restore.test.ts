import { createHash } from 'node:crypto'
import { cp, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { backupDatabase } from '../../../src/provision/postgres/backup.js'
import { restoreDatabase, verifyBackup } from '../../../src/provision/postgres/restore.js'
import { listTables, tableContentChecksum } from '../../../src/provision/postgres/schema-tables.js'
import { isHelixError } from '../../../src/shared/errors.js'
import { migrationsDir, sha256Hex } from '../../../src/state/db/migration-files.js'
import { migrate, readApplied } from '../../../src/state/db/migrator.js'
import type { DatabasePool } from '../../../src/state/db/pool.js'
import {
  apiKeys,
  audit,
  refreshTokens,
  requestLog,
  usage,
  users,
} from '../../../src/state/db/repositories/index.js'
import {
  databaseTargets,
  dropAllTables,
  openPool,
  provisionDatabase,
  type TestDatabase,
} from '../../state/db/database-targets.js'

async function errorCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (err) {
    return isHelixError(err) ? err.code : `NOT_HELIX: ${err}`
  }
  return 'NO_ERROR'
}

/** Independent of the code under test: every row of every table, ordered, as text. */
async function snapshot(pool: DatabasePool): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {}
  for (const { name } of await listTables(pool)) {
    const { rows } = await pool.query<{ r: string }>(`SELECT t::text AS r FROM "${name}" t ORDER BY 1`)
    out[name] = rows.map((r) => r.r)
  }
  return out
}

async function checksums(pool: DatabasePool): Promise<Record<string, { rows: number; sha256: string }>> {
  const out: Record<string, { rows: number; sha256: string }> = {}
  for (const { name } of await listTables(pool)) out[name] = await tableContentChecksum(pool, name)
  return out
}

async function seed(pool: DatabasePool): Promise<void> {
  const hash = (s: string) => createHash('sha256').update(s).digest('hex')
  for (let i = 0; i < 30; i++) {
    const u = await users.createUser(pool, {
      email: `user${i}@Example.com`,
      passwordHash: `$argon2id$${i}`,
      displayName: i % 2 ? `Ünïcode "quoted"\nline ${i}` : null,
    })
    const first = await refreshTokens.insertRefreshToken(pool, {
      userId: u.id,
      tokenHash: hash(`r${i}`),
      expiresAt: new Date(Date.UTC(2030, 0, 1, 0, 0, 0, 123)),
      ip: '192.0.2.1',
    })
    // A child inserted before its parent in primary-key order is what deferred foreign keys are for.
    await refreshTokens.insertRefreshToken(pool, {
      userId: u.id,
      familyId: first.family_id,
      parentId: first.id,
      tokenHash: hash(`c${i}`),
      expiresAt: new Date('2030-01-01T00:00:00.000456Z'),
    })
    const key = await apiKeys.createApiKey(pool, {
      userId: u.id,
      name: `k${i}`,
      prefix: 'hx_',
      last4: String(i).padStart(4, '0'),
      keyHash: hash(`k${i}`),
      scopes: ['infer', 'models:read'],
      models: i % 3 ? null : ['m,1', 'm"2'],
      quotaItems: 2 ** 40,
    })
    await usage.recordUsage(pool, key.id, { at: new Date('2026-01-01T10:00:00Z'), tokens: i })
    await audit.recordAudit(pool, {
      action: 'auth.login.success',
      actorUserId: u.id,
      ip: '2001:db8::1',
      details: { n: i, nested: { ok: true }, f: 0.1 + 0.2 },
    })
    await requestLog.logRequest(pool, {
      requestId: `req-${i}`,
      apiKeyId: key.id,
      method: 'POST',
      route: '/v2/models/:name/infer',
      status: 200,
      durationMs: 1 / 3 + i,
    })
  }
}

describe.each(databaseTargets())('backup and restore against the %s database', (kind) => {
  let db: TestDatabase
  let pool: DatabasePool
  let dir: string
  let backup: string
  let before: Record<string, string[]>
  let beforeSums: Record<string, { rows: number; sha256: string }>

  beforeAll(async () => {
    db = await provisionDatabase(kind)
    pool = openPool(db)
    dir = await mkdtemp(join(tmpdir(), 'helix-backup-'))
    backup = join(dir, 'helix.backup')
    await migrate(pool)
    await seed(pool)
    before = await snapshot(pool)
    beforeSums = await checksums(pool)
  })
  afterAll(async () => {
    await pool?.close()
    await db?.teardown()
    await rm(dir, { recursive: true, force: true })
  })

  it('writes a 0600 backup whose manifest and checksums verify', async () => {
    const result = await backupDatabase(pool, backup)
    expect(result.file).toBe(backup)
    expect((await stat(backup)).mode & 0o777).toBe(0o600)
    expect(result.tables.find((t) => t.name === 'users')?.rows).toBe(30)
    expect(result.tables.find((t) => t.name === 'refresh_tokens')?.rows).toBe(60)
    const text = await readFile(backup, 'utf8')
    const endAt = text.lastIndexOf('@end ')
    expect(text.slice(endAt + 5).trim()).toBe(sha256Hex(text.slice(0, endAt)))
    expect(result.sha256).toBe(sha256Hex(text.slice(0, endAt)))
    const manifest = await verifyBackup(backup)
    expect(manifest.schema_version).toBe(result.schemaVersion)
    expect(manifest.migrations.map((m) => m.name)).toEqual((await readApplied(pool)).map((m) => m.name))
    expect(await errorCode(backupDatabase(pool, backup))).toBe('BACKUP_EXISTS')
  })

  it('refuses to restore over existing tables', async () => {
    expect(await errorCode(restoreDatabase(pool, backup))).toBe('DB_NOT_EMPTY')
  })

  it('backup → drop everything → restore gives identical rows, checksums and migration state', async () => {
    const applied = await readApplied(pool)
    await dropAllTables(pool)
    expect(await listTables(pool)).toEqual([])
    const result = await restoreDatabase(pool, backup)
    expect(result.tables.find((t) => t.name === 'audit_log')?.rows).toBe(30)
    expect(await snapshot(pool)).toEqual(before)
    expect(await checksums(pool)).toEqual(beforeSums)
    expect(await readApplied(pool)).toEqual(applied)
    // Identity sequences continue after the restored ids instead of colliding with them.
    const entry = await audit.recordAudit(pool, { action: 'after.restore' })
    expect(Number(entry.id)).toBe(31)
  })

  describe('refuses a damaged backup before writing anything', () => {
    let damaged: string
    beforeAll(async () => {
      await dropAllTables(pool)
      damaged = join(dir, 'damaged.backup')
    })

    const cases: [string, (file: string, size: number, text: string) => Promise<void>, string][] = [
      ['truncated in the middle', (f, size) => truncate(f, Math.floor(size / 2)), 'BACKUP_TRUNCATED'],
      ['cut just before the end line', (f, _s, t) => truncate(f, t.lastIndexOf('@end ')), 'BACKUP_TRUNCATED'],
      ['missing the final newline', (f, size) => truncate(f, size - 1), 'BACKUP_TRUNCATED'],
      [
        'one byte changed in a row',
        (f, _s, t) => writeFile(f, t.replace('user17@Example.com', 'user17@Example.con')),
        'BACKUP_CORRUPT',
      ],
      [
        'a row removed and the file checksum recomputed',
        async (f, _s, t) => {
          const lines = t.split('\n')
          const at = lines.findIndex((l) => l.includes('user3@Example.com'))
          lines.splice(at, 1)
          const body = `${lines.slice(0, -2).join('\n')}\n`
          await writeFile(f, `${body}@end ${sha256Hex(body)}\n`)
        },
        'BACKUP_CORRUPT',
      ],
      [
        'a broken manifest',
        (f, _s, t) => writeFile(f, t.replace('"format":1', '"format":2')),
        'BACKUP_CORRUPT',
      ],
      ['manifest not JSON', (f, _s, t) => writeFile(f, t.replace('{"format"', '{format')), 'BACKUP_CORRUPT'],
      ['data after the end line', (f, _s, t) => writeFile(f, `${t}extra\n`), 'BACKUP_CORRUPT'],
      ['not a helix backup', (f) => writeFile(f, 'PGDMP custom format\n'), 'BACKUP_INVALID'],
    ]
    it.each(cases)('%s', async (_name, damage, code) => {
      await cp(backup, damaged)
      const text = await readFile(damaged, 'utf8')
      await damage(damaged, (await stat(damaged)).size, text)
      expect(await errorCode(restoreDatabase(pool, damaged))).toBe(code)
      expect(await listTables(pool)).toEqual([])
      expect(await readApplied(pool)).toEqual([])
      await rm(damaged)
    })

    it('a missing file', async () => {
      expect(await errorCode(restoreDatabase(pool, join(dir, 'nope.backup')))).toBe('BACKUP_NOT_FOUND')
    })

    it('a backup made with different migration files', async () => {
      const other = await mkdtemp(join(tmpdir(), 'helix-migrations-'))
      await cp(migrationsDir(), other, { recursive: true })
      await writeFile(
        join(other, '0001_auth_schema.sql'),
        `${await readFile(join(other, '0001_auth_schema.sql'), 'utf8')}\n-- edited\n`,
      )
      process.env.HELIX_MIGRATIONS_DIR = other
      try {
        expect(await errorCode(restoreDatabase(pool, backup))).toBe('BACKUP_INCOMPATIBLE')
      } finally {
        delete process.env.HELIX_MIGRATIONS_DIR
        await rm(other, { recursive: true, force: true })
      }
      expect(await listTables(pool)).toEqual([])
    })
  })
})
