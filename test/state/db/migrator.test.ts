import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isHelixError } from '../../../src/shared/errors.js'
import { loadMigrations, migrationsDir } from '../../../src/state/db/migration-files.js'
import { compareMigrations, migrate, migrationState, readApplied } from '../../../src/state/db/migrator.js'
import type { DatabasePool } from '../../../src/state/db/pool.js'
import {
  databaseTargets,
  dropAllTables,
  openPool,
  provisionDatabase,
  type TestDatabase,
} from './database-targets.js'

async function errorOf(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await promise
  } catch (err) {
    if (isHelixError(err)) return { code: err.code, message: err.message }
    return { code: 'NOT_HELIX', message: String(err) }
  }
  throw new Error('expected a rejection')
}

describe('loadMigrations', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'helix-migrations-'))
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('reads the shipped migrations in order with their SHA-256', async () => {
    const files = await loadMigrations()
    expect(files[0].name).toBe('0001_auth_schema.sql')
    expect(files.map((f) => f.version)).toEqual([...files.map((f) => f.version)].sort((a, b) => a - b))
    expect(files[0].checksum).toMatch(/^[0-9a-f]{64}$/)
    expect(migrationsDir({ HELIX_MIGRATIONS_DIR: dir })).toBe(dir)
  })

  it('refuses a misnamed file, a duplicate version and a missing directory', async () => {
    await writeFile(join(dir, 'add_things.sql'), 'SELECT 1')
    expect((await errorOf(loadMigrations(dir))).code).toBe('MIGRATION_INVALID')
    await rm(join(dir, 'add_things.sql'))
    await writeFile(join(dir, '0001_a.sql'), 'SELECT 1')
    await writeFile(join(dir, '0001_b.sql'), 'SELECT 2')
    const duplicate = await errorOf(loadMigrations(dir))
    expect(duplicate.code).toBe('MIGRATION_INVALID')
    expect(duplicate.message).toContain('0001_b.sql')
    expect((await errorOf(loadMigrations(join(dir, 'nope')))).code).toBe('MIGRATIONS_MISSING')
  })

  it('classifies applied, pending, drifted and missing migrations', () => {
    const files = [
      { version: 1, name: '0001_a.sql', sql: '', checksum: 'a' },
      { version: 2, name: '0002_b.sql', sql: '', checksum: 'b' },
      { version: 4, name: '0004_d.sql', sql: '', checksum: 'd' },
    ]
    const at = new Date()
    const state = compareMigrations(files, [
      { version: 1, name: '0001_a.sql', checksum: 'a', applied_at: at, execution_ms: 1 },
      { version: 2, name: '0002_b.sql', checksum: 'changed', applied_at: at, execution_ms: 1 },
      { version: 3, name: '0003_c.sql', checksum: 'c', applied_at: at, execution_ms: 1 },
    ])
    expect(state).toEqual({
      applied: ['0001_a.sql'],
      drift: ['0002_b.sql'],
      missing: ['0003_c.sql'],
      pending: ['0004_d.sql'],
      schemaVersion: '0003_c.sql',
    })
  })
})

describe.each(databaseTargets())('migrations against the %s database', (kind) => {
  let db: TestDatabase
  let pool: DatabasePool
  let dir: string

  beforeAll(async () => {
    db = await provisionDatabase(kind)
    pool = openPool(db)
    dir = await mkdtemp(join(tmpdir(), 'helix-migrations-'))
  })
  afterAll(async () => {
    await pool?.close()
    await db?.teardown()
    await rm(dir, { recursive: true, force: true })
  })

  it('applies every migration once; a second run applies nothing; dry run lists without writing', async () => {
    const files = await loadMigrations()
    const names = files.map((f) => f.name)
    const dry = await migrate(pool, { dryRun: true })
    expect(dry).toEqual({ dryRun: true, applied: names, alreadyApplied: [] })
    expect(await readApplied(pool)).toEqual([])

    const first = await migrate(pool)
    expect(first.applied).toEqual(names)
    const second = await migrate(pool)
    expect(second).toEqual({ dryRun: false, applied: [], alreadyApplied: names })
    const rows = await readApplied(pool)
    expect(rows.map((r) => r.checksum)).toEqual(files.map((f) => f.checksum))
    const state = await migrationState(pool)
    expect(state.pending).toEqual([])
    expect(state.schemaVersion).toBe(names.at(-1))
    const { rows: tables } = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_class WHERE relname IN ('users','refresh_tokens','revoked_tokens','api_keys','api_key_usage','email_tokens','audit_log','request_log')",
    )
    expect(tables[0].n).toBe(8)
  })

  it('refuses an applied migration whose file was edited, naming the file', async () => {
    await cp(migrationsDir(), dir, { recursive: true })
    const edited = join(dir, '0001_auth_schema.sql')
    await writeFile(edited, `${(await loadMigrations(dir))[0].sql}\n-- an edit\n`)
    const err = await errorOf(migrate(pool, { files: await loadMigrations(dir) }))
    expect(err.code).toBe('MIGRATION_DRIFT')
    expect(err.message).toContain('0001_auth_schema.sql')
    expect((await migrationState(pool, await loadMigrations(dir))).drift).toEqual(['0001_auth_schema.sql'])
  })

  it('refuses when an applied migration file no longer exists', async () => {
    const files = (await loadMigrations()).slice(1)
    const err = await errorOf(migrate(pool, { files }))
    expect(err.code).toBe('MIGRATION_DRIFT')
    expect(err.message).toContain('0001_auth_schema.sql')
  })

  it('rolls a failing migration back entirely and records nothing', async () => {
    const files = await loadMigrations()
    const bad = {
      version: 9001,
      name: '9001_bad.sql',
      checksum: 'x',
      sql: 'CREATE TABLE half_done (id int); SELECT * FROM no_such_table;',
    }
    const err = await errorOf(migrate(pool, { files: [...files, bad] }))
    expect(err.code).toBe('MIGRATION_FAILED')
    expect(err.message).toContain('9001_bad.sql')
    const { rows } = await pool.query<{ t: string | null }>("SELECT to_regclass('half_done')::text AS t")
    expect(rows[0].t).toBeNull()
    expect((await readApplied(pool)).map((r) => r.version)).not.toContain(9001)
  })

  it('serialises concurrent runs on separate connections: each migration is applied exactly once', async () => {
    await dropAllTables(pool)
    const pools = [openPool(db), openPool(db), openPool(db)]
    try {
      const results = await Promise.all(pools.map((p) => migrate(p)))
      const names = (await loadMigrations()).map((f) => f.name)
      const appliedBy = results.flatMap((r) => r.applied).sort()
      expect(appliedBy).toEqual([...names].sort())
      for (const r of results) expect([...r.applied, ...r.alreadyApplied].sort()).toEqual([...names].sort())
      expect((await readApplied(pool)).map((r) => r.name)).toEqual(names)
    } finally {
      await Promise.all(pools.map((p) => p.close()))
    }
  })
})
