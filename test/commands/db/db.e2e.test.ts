import { cp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HELIX_BIN, runHelix, runHelixJson, tempDir } from '../../helpers/cli.js'
import { hasTool } from '../../helpers/tools.js'
import { databaseTargets, provisionDatabase, type TestDatabase } from '../../state/db/database-targets.js'

/** Independent of the code under test: a checksum of every row of every helix table. */
async function tableChecksums(url: string): Promise<Record<string, string>> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows: tables } = await client.query<{ name: string }>(
      'SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1',
    )
    const out: Record<string, string> = {}
    for (const { name } of tables) {
      const { rows } = await client.query<{ sum: string }>(
        `SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') AS sum FROM "${name}" t`,
      )
      out[name] = rows[0].sum
    }
    return out
  } finally {
    await client.end()
  }
}

async function sql(url: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await client.query(text)
  } finally {
    await client.end()
  }
}

const dropEverything = `DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() LOOP
    EXECUTE format('DROP TABLE %I CASCADE', r.tablename);
  END LOOP; END $$`

const seedRows = `
  INSERT INTO users (email, password_hash, display_name) SELECT 'u' || i || '@Example.com', '$argon2id$' || i, 'Name ' || i FROM generate_series(1, 25) i;
  INSERT INTO api_keys (user_id, name, prefix, last4, key_hash, scopes) SELECT id, 'k', 'hx_', right(md5(email), 4), md5(email), '{infer}' FROM users;
  INSERT INTO audit_log (actor_user_id, action, ip, details) SELECT id, 'auth.login.success', '198.51.100.7', jsonb_build_object('e', email) FROM users;`

describe.each(databaseTargets())('helix db, the built CLI, on the %s database', (kind) => {
  let db: TestDatabase | undefined
  let dir: string
  let cleanup: () => Promise<void>
  let env: Record<string, string | undefined>
  const helix = (args: string[], extra: Record<string, string | undefined> = {}) =>
    runHelix(args, { env: { ...env, ...extra } })
  const helixJson = <T>(args: string[], extra: Record<string, string | undefined> = {}) =>
    runHelixJson<T>(args, { env: { ...env, ...extra } })
  let url: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('helix-db-e2e-'))
    env = { HELIX_DIR: dir, DATABASE_URL: undefined }
    if (kind === 'external') {
      db = await provisionDatabase('external')
      env = db.env
    }
  })
  afterAll(async () => {
    await helix(['db', 'stop'])
    await db?.teardown()
    await cleanup()
  })

  it('db start runs the server in the background; psql "$(helix db url)" works; start again is a no-op', async () => {
    const first = await helixJson<{ mode: string; started?: boolean; pid?: number }>(['db', 'start'])
    expect(first.mode).toBe(kind)
    url = (await helix(['db', 'url'])).stdout.trim()
    expect(url).toMatch(/^postgres(ql)?:\/\//)
    if (hasTool('psql')) {
      const psql = await execa('sh', ['-c', `psql "$(node ${HELIX_BIN} db url)" -Atc 'select 1'`], {
        env: { ...process.env, ...env } as NodeJS.ProcessEnv,
        extendEnv: false,
        reject: false,
      })
      expect(psql.stderr).toBe('')
      expect(psql.stdout).toBe('1')
    }
    const second = await helixJson<{ started?: boolean; pid?: number }>(['db', 'start'])
    if (kind === 'embedded') {
      expect(first.started).toBe(true)
      expect(second).toMatchObject({ started: false, pid: first.pid })
    } else {
      expect(second.started).toBe(false)
    }
    const redacted = (await helix(['db', 'url', '--redact'])).stdout.trim()
    expect(redacted).toContain(':*****@')
    expect(redacted).not.toContain(new URL(url).password)
  })

  it('db migrate applies everything once; the second run applies nothing', async () => {
    const dry = await helixJson<{ applied: string[] }>(['db', 'migrate', '--dry-run'])
    expect(dry.applied[0]).toBe('0001_auth_schema.sql')
    const first = await helixJson<{ applied: string[] }>(['db', 'migrate'])
    expect(first.applied).toEqual(dry.applied)
    const second = await helixJson<{ applied: string[]; alreadyApplied: string[] }>(['db', 'migrate'])
    expect(second.applied).toEqual([])
    expect(second.alreadyApplied).toEqual(dry.applied)
    const status = await helixJson<{
      running: boolean
      migrations: { pending: string[]; applied: string[] }
    }>(['db', 'status'])
    expect(status.running).toBe(true)
    expect(status.migrations).toMatchObject({ pending: [], applied: dry.applied })
  })

  it('an edited applied migration makes migrate refuse, naming the file (exit 1, MIGRATION_DRIFT)', async () => {
    const migrations = join(dir, 'edited-migrations')
    await cp(join(HELIX_BIN, '..', '..', 'migrations'), migrations, { recursive: true })
    const file = join(migrations, '0001_auth_schema.sql')
    await writeFile(file, (await readFile(file, 'utf8')).replace('CREATE TABLE users', 'CREATE TABLE  users'))
    const refused = await helix(['db', 'migrate', '--json'], { HELIX_MIGRATIONS_DIR: migrations })
    expect(refused.exitCode).toBe(1)
    const error = JSON.parse(refused.stderr).error
    expect(error.code).toBe('MIGRATION_DRIFT')
    expect(error.message).toContain('0001_auth_schema.sql')
    const human = await helix(['db', 'migrate'], { HELIX_MIGRATIONS_DIR: migrations })
    expect(human.stderr).toMatch(/^Error: Applied migration 0001_auth_schema.sql was edited/)
    expect(human.stderr).not.toMatch(/\n\s+at /)
    const status = await helixJson<{ migrations: { drift: string[] } }>(['db', 'status'], {
      HELIX_MIGRATIONS_DIR: migrations,
    })
    expect(status.migrations.drift).toEqual(['0001_auth_schema.sql'])
  })

  it('two migrate processes started at the same moment both exit 0 and apply each migration once', async () => {
    await sql(url, dropEverything)
    const [a, b] = await Promise.all([helix(['db', 'migrate', '--json']), helix(['db', 'migrate', '--json'])])
    expect([a.exitCode, b.exitCode, a.stderr, b.stderr]).toEqual([0, 0, '', ''])
    const ra = JSON.parse(a.stdout) as { applied: string[] }
    const rb = JSON.parse(b.stdout) as { applied: string[] }
    const { rows } = await sql(url, 'SELECT name FROM helix_migrations ORDER BY version')
    const all = rows.map((r) => r.name)
    expect([...ra.applied, ...rb.applied].sort()).toEqual([...all].sort())
    expect(new Set([...ra.applied, ...rb.applied]).size).toBe(all.length)
  })

  it('backup → drop everything → restore gives identical tables; damaged backups are refused first', async () => {
    await sql(url, seedRows)
    const before = await tableChecksums(url)
    expect(before.users).toMatch(/^25:/)
    const file = join(dir, `e2e-${kind}.backup`)
    const backup = await helixJson<{ file: string; tables: { name: string; rows: number }[] }>([
      'db',
      'backup',
      '--out',
      file,
    ])
    expect(backup.tables.find((t) => t.name === 'audit_log')?.rows).toBe(25)
    expect((await stat(file)).mode & 0o777).toBe(0o600)

    await sql(url, dropEverything)
    const empty = await tableChecksums(url)
    expect(empty).toEqual({})

    const broken = join(dir, 'broken.backup')
    await cp(file, broken)
    await truncate(broken, (await stat(file)).size - 100)
    const truncated = await helix(['db', 'restore', broken, '--json'])
    expect(truncated.exitCode).toBe(1)
    expect(JSON.parse(truncated.stderr).error.code).toBe('BACKUP_TRUNCATED')
    await writeFile(broken, (await readFile(file, 'utf8')).replace('u7@Example.com', 'u7@Example.org'))
    const corrupted = await helix(['db', 'restore', broken, '--json'])
    expect(corrupted.exitCode).toBe(1)
    expect(JSON.parse(corrupted.stderr).error.code).toBe('BACKUP_CORRUPT')
    expect(await tableChecksums(url)).toEqual({})

    const restored = await helixJson<{ tables: { name: string; rows: number }[] }>(['db', 'restore', file])
    expect(restored.tables).toEqual(backup.tables)
    expect(await tableChecksums(url)).toEqual(before)
    await rm(broken)
  })

  it.runIf(kind === 'embedded')(
    'db stop leaves no postgres process; then commands fail with DB_UNREACHABLE, no stack trace',
    async () => {
      const status = await helixJson<{ pid: number; dataDir: string }>(['db', 'status'])
      const stop = await helixJson<{ stopped: boolean; pid: number }>(['db', 'stop'])
      expect(stop).toMatchObject({ stopped: true, pid: status.pid })
      const left = await execa('pgrep', ['-f', status.dataDir], { reject: false })
      expect(left.stdout).toBe('')
      const procStat = await readFile(`/proc/${status.pid}/stat`, 'utf8').catch(() => '')
      expect(procStat === '' || procStat.slice(procStat.lastIndexOf(')') + 2)[0] === 'Z').toBe(true)
      const stopped = await helixJson<{ running: boolean }>(['db', 'status'])
      expect(stopped.running).toBe(false)
      const migrate = await helix(['db', 'migrate'])
      expect(migrate.exitCode).toBe(1)
      expect(migrate.stderr).toMatch(
        /^Error: Cannot reach the database at postgresql:\/\/helix:\*{5}@127\.0\.0\.1:\d+\/helix/,
      )
      expect(migrate.stderr).toMatch(/Hint: Start the embedded server with `helix db start`/)
      expect(migrate.stderr).not.toMatch(/\n\s+at /)
      expect((await helixJson<{ stopped: boolean }>(['db', 'stop'])).stopped).toBe(false)
    },
  )
})
