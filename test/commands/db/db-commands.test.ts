import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import DbBackup from '../../../src/commands/db/backup.js'
import DbMigrate from '../../../src/commands/db/migrate.js'
import DbRestore from '../../../src/commands/db/restore.js'
import DbStart from '../../../src/commands/db/start.js'
import DbStatus from '../../../src/commands/db/status.js'
import DbStop from '../../../src/commands/db/stop.js'
import DbUrl from '../../../src/commands/db/url.js'
import { parseConfig } from '../../../src/shared/config.js'
import { HelixHome } from '../../../src/shared/home.js'
import { findFreePort } from '../../../src/shared/ports.js'
import { DatabasePool } from '../../../src/state/db/pool.js'
import { resolveDatabase } from '../../../src/state/db/resolve.js'
import {
  databaseTargets,
  dropAllTables,
  provisionDatabase,
  type TestDatabase,
} from '../../state/db/database-targets.js'
import { runInProcess } from './in-process.js'

describe('db commands, in process, on the embedded database', () => {
  let dir: string
  const env = () => ({ HELIX_DIR: dir, DATABASE_URL: undefined })

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'helix-dbcmd-'))
  })
  afterAll(async () => {
    await runInProcess(DbStop, [], env())
    await rm(dir, { recursive: true, force: true })
  })

  it('start, start again, url, status, migrate (dry run and real), backup, restore, stop', async () => {
    const url0 = await runInProcess(DbUrl, [], env())
    expect(url0.exitCode).toBe(1)
    expect(url0.stderr).toMatch(/never been started[\s\S]*Hint: Run `helix db start`/)

    const start = await runInProcess(DbStart, [], env())
    expect(start.exitCode).toBe(0)
    expect(start.stdout).toMatch(/PostgreSQL started on port \d+ \(pid \d+\), new cluster created/)
    const again = await runInProcess(DbStart, [], env())
    expect(again.stdout).toMatch(/already running/)

    const url = await runInProcess(DbUrl, [], env())
    expect(url.stdout.trim()).toMatch(/^postgresql:\/\/helix:[A-Za-z0-9_-]{43}@127\.0\.0\.1:\d+\/helix$/)
    const redacted = await runInProcess(DbUrl, ['--redact', '--json'], env())
    expect(JSON.parse(redacted.stdout)).toMatchObject({
      mode: 'embedded',
      redacted: true,
      url: expect.stringContaining(':*****@'),
    })

    const dry = await runInProcess(DbMigrate, ['--dry-run'], env())
    expect(dry.stdout).toMatch(/Would apply \d+ migration\(s\):\n {2}0001_auth_schema.sql/)
    expect((await runInProcess(DbMigrate, [], env())).stdout).toMatch(/^Applied \d+ migration/)
    expect((await runInProcess(DbMigrate, [], env())).stdout).toMatch(/Nothing to apply/)

    const status = await runInProcess(DbStatus, [], env())
    expect(status.stdout).toMatch(/mode\s+embedded\nstate\s+running/)
    expect(status.stdout).toMatch(/pending\s+none/)
    expect(status.stdout).toMatch(/data\s+.*MiB/)

    const file = join(dir, 'cmd.backup')
    const backup = await runInProcess(DbBackup, ['--out', file], env())
    expect(backup.stdout).toMatch(/Backup written to .*cmd\.backup: \d+ tables, 0 rows/)
    const home = new HelixHome(dir)
    const config = parseConfig({})
    const pool = new DatabasePool(await resolveDatabase(home, config), config.database)
    await dropAllTables(pool)
    await pool.close()
    const restore = await runInProcess(DbRestore, [file], env())
    expect(restore.stdout).toMatch(/^Restored \d+ tables, 0 rows and \d+ migration\(s\)/)

    const stop = await runInProcess(DbStop, [], env())
    expect(stop.stdout).toMatch(/PostgreSQL stopped \(pid \d+\)/)
    expect((await runInProcess(DbStop, [], env())).stdout).toMatch(/was not running/)
    expect((await runInProcess(DbStatus, [], env())).stdout).toMatch(/state\s+stopped/)

    const unreachable = await runInProcess(DbMigrate, ['--json'], env())
    expect(unreachable.exitCode).toBe(1)
    const error = JSON.parse(unreachable.stderr).error
    expect(error.code).toBe('DB_UNREACHABLE')
    expect(error.message).toContain('*****')
    expect(error.hint).toMatch(/helix db start/)
  })
})

describe.each(databaseTargets().filter((k) => k === 'external'))(
  'db commands, in process, on the %s database',
  (kind) => {
    let db: TestDatabase
    beforeAll(async () => {
      db = await provisionDatabase(kind)
    })
    afterAll(() => db?.teardown())

    it('start and stop leave an external server alone; status, url and migrate work through DATABASE_URL', async () => {
      const start = await runInProcess(DbStart, [], db.env)
      expect(start.stdout).toMatch(/External database .* is reachable; nothing to start/)
      expect(start.stdout).not.toContain(new URL(db.target.url).password)
      expect((await runInProcess(DbMigrate, [], db.env)).exitCode).toBe(0)
      const status = await runInProcess(DbStatus, ['--json'], db.env)
      expect(JSON.parse(status.stdout)).toMatchObject({
        mode: 'external',
        running: true,
        reachable: true,
        migrations: { pending: [] },
      })
      expect((await runInProcess(DbStop, [], db.env)).stdout).toMatch(/external .* helix does not stop it/)
      expect((await runInProcess(DbUrl, [], db.env)).stdout.trim()).toBe(db.target.url)
    })
  },
)

describe('db commands on an unreachable external database', () => {
  it('fail with DB_UNREACHABLE, the redacted URL and a hint, and no stack trace', async () => {
    const port = await findFreePort()
    const env = { DATABASE_URL: `postgresql://u:hunter2@127.0.0.1:${port}/x`, HELIX_DIR: tmpdir() }
    const start = await runInProcess(DbStart, [], env)
    expect(start.exitCode).toBe(1)
    expect(start.stderr).toMatch(
      new RegExp(`^Error: Cannot reach the database at postgresql://u:\\*{5}@127.0.0.1:${port}/x`),
    )
    expect(start.stderr).toMatch(/Hint: Check that the server runs/)
    expect(start.stderr).not.toContain('hunter2')
    expect(start.stderr).not.toMatch(/\n\s+at /)
    const status = await runInProcess(DbStatus, ['--json'], env)
    expect(status.exitCode).toBe(0)
    expect(JSON.parse(status.stdout)).toMatchObject({
      mode: 'external',
      running: false,
      reachable: false,
      migrations: null,
    })
  })
})
