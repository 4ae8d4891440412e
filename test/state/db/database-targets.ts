import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { afterAll, beforeAll } from 'vitest'
import { startEmbedded, stopEmbedded } from '../../../src/provision/postgres/embedded-server.js'
import { type HelixConfig, parseConfig } from '../../../src/shared/config.js'
import { HelixHome } from '../../../src/shared/home.js'
import { migrate } from '../../../src/state/db/migrator.js'
import { DatabasePool } from '../../../src/state/db/pool.js'
import { type DatabaseTarget, resolveDatabase } from '../../../src/state/db/resolve.js'
import { tempDir } from '../../helpers/cli.js'

export type TargetKind = 'embedded' | 'external'

/** A database for one test file: a fresh embedded server, or a fresh database on the external server. */
export interface TestDatabase {
  kind: TargetKind
  home: HelixHome
  config: HelixConfig
  target: DatabaseTarget
  /** Environment for running the CLI against this database. */
  env: Record<string, string | undefined>
  teardown(): Promise<void>
}

/**
 * The suites run against the embedded server, and again against an external PostgreSQL when
 * TEST_EXTERNAL_DATABASE_URL is set (.ci/postgres.sh sets it). Under CI=true it must be set, so CI
 * can never pass by silently skipping the external run.
 */
export function databaseTargets(): TargetKind[] {
  const external = process.env.TEST_EXTERNAL_DATABASE_URL
  if (!external && process.env.CI) {
    throw new Error('TEST_EXTERNAL_DATABASE_URL is required under CI=true: run `. .ci/postgres.sh` first')
  }
  return external ? ['embedded', 'external'] : ['embedded']
}

export async function provisionDatabase(kind: TargetKind): Promise<TestDatabase> {
  const { dir, cleanup } = await tempDir('helix-db-')
  const home = new HelixHome(dir)
  if (kind === 'embedded') {
    const config = parseConfig({})
    await startEmbedded(home, config)
    const target = await resolveDatabase(home, config)
    return {
      kind,
      home,
      config,
      target,
      env: { DATABASE_URL: undefined, HELIX_DIR: dir },
      teardown: async () => {
        await stopEmbedded(home, config)
        await cleanup()
      },
    }
  }
  const admin = process.env.TEST_EXTERNAL_DATABASE_URL as string
  const name = `helix_test_${randomBytes(5).toString('hex')}`
  const client = new pg.Client({ connectionString: admin })
  await client.connect()
  await client.query(`CREATE DATABASE ${name}`)
  await client.end()
  const url = new URL(admin)
  url.pathname = `/${name}`
  const config = parseConfig({ database: { url: url.toString() } })
  const target = await resolveDatabase(home, config)
  return {
    kind,
    home,
    config,
    target,
    env: { DATABASE_URL: url.toString(), HELIX_DIR: dir },
    teardown: async () => {
      const c = new pg.Client({ connectionString: admin })
      await c.connect()
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await c.end()
      await cleanup()
    },
  }
}

export function openPool(db: TestDatabase): DatabasePool {
  return new DatabasePool(db.target, db.config.database)
}

/**
 * For a describe block: a database of `kind`, migrated, with a pool on it (`.pool` once beforeAll
 * has run), torn down after the block.
 */
export function useMigratedDatabase(kind: TargetKind): { pool: DatabasePool } {
  const state = {} as { pool: DatabasePool; db?: TestDatabase }
  beforeAll(async () => {
    state.db = await provisionDatabase(kind)
    state.pool = openPool(state.db)
    await migrate(state.pool)
  })
  afterAll(async () => {
    await state.pool?.close()
    await state.db?.teardown()
  })
  return state
}

/** "Drop everything": every table of the schema, the migrations ledger included. */
export async function dropAllTables(pool: DatabasePool): Promise<void> {
  const { rows } = await pool.query<{ name: string }>(
    `SELECT quote_ident(relname) AS name FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p')`,
  )
  if (rows.length > 0) await pool.query(`DROP TABLE ${rows.map((r) => r.name).join(', ')} CASCADE`)
}
