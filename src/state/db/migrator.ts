import type pg from 'pg'
import { Failure } from '../../shared/errors.js'
import { loadMigrations, type MigrationFile } from './migration-files.js'
import type { DatabasePool, Queryable } from './pool.js'

/** A row of helix_migrations. */
export interface AppliedMigration {
  version: number
  name: string
  checksum: string
  applied_at: Date
  execution_ms: number
}

export interface MigrationState {
  /** Applied, and the file still has the recorded checksum. */
  applied: string[]
  /** Files not applied yet, in the order they would run. */
  pending: string[]
  /** Applied, but the file was edited since (its checksum changed). */
  drift: string[]
  /** Applied, but no file of that version exists any more. */
  missing: string[]
  /** Name of the newest applied migration, the schema version. */
  schemaVersion: string | null
}

export interface MigrateResult {
  dryRun: boolean
  /** Applied by this run (or, with dryRun, what would be applied). */
  applied: string[]
  /** Already applied before this run, or by a concurrent run while this one waited. */
  alreadyApplied: string[]
}

export const MIGRATIONS_TABLE = 'helix_migrations'

/** The ledger of applied migrations (restore creates it the same way). */
export const MIGRATIONS_TABLE_DDL = `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE} (
  version integer PRIMARY KEY,
  name text NOT NULL,
  checksum text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  execution_ms integer NOT NULL
)`

// Any constant works; it only has to differ from other applications' advisory lock keys.
const BOOTSTRAP_LOCK_KEY = 0x48454c4958 // "HELIX"

/** The recorded migrations, oldest first; empty when the table does not exist yet. */
export async function readApplied(db: Queryable): Promise<AppliedMigration[]> {
  const { rows } = await db.query<{ exists: boolean }>(
    `SELECT to_regclass('${MIGRATIONS_TABLE}') IS NOT NULL AS exists`,
  )
  if (!rows[0].exists) return []
  const result = await db.query<AppliedMigration>(
    `SELECT version, name, checksum, applied_at, execution_ms FROM ${MIGRATIONS_TABLE} ORDER BY version`,
  )
  return result.rows
}

/** Compares the recorded migrations with the files. */
export function compareMigrations(files: MigrationFile[], applied: AppliedMigration[]): MigrationState {
  const byVersion = new Map(files.map((f) => [f.version, f]))
  const done = new Set(applied.map((a) => a.version))
  const state: MigrationState = { applied: [], pending: [], drift: [], missing: [], schemaVersion: null }
  for (const row of applied) {
    const file = byVersion.get(row.version)
    if (!file) state.missing.push(row.name)
    else if (file.checksum !== row.checksum) state.drift.push(file.name)
    else state.applied.push(file.name)
    state.schemaVersion = row.name
  }
  state.pending = files.filter((f) => !done.has(f.version)).map((f) => f.name)
  return state
}

export async function migrationState(db: Queryable, files?: MigrationFile[]): Promise<MigrationState> {
  return compareMigrations(files ?? (await loadMigrations()), await readApplied(db))
}

function refuseDrift(state: MigrationState): void {
  if (state.drift.length > 0) {
    throw new Failure(
      'MIGRATION_DRIFT',
      `Applied migration ${state.drift.join(', ')} was edited after it was applied.`,
      {
        hint: 'Restore the original file (git checkout migrations/) and put the change in a new migration file.',
        details: { drift: state.drift },
      },
    )
  }
  if (state.missing.length > 0) {
    throw new Failure('MIGRATION_DRIFT', `Applied migration ${state.missing.join(', ')} no longer exists.`, {
      hint: 'This database was migrated by a newer helix; upgrade helix or restore the missing migration files.',
      details: { missing: state.missing },
    })
  }
}

/**
 * Applies pending migrations in order, each in its own transaction.
 *
 * Concurrency: every migration transaction first takes `LOCK TABLE helix_migrations IN EXCLUSIVE
 * MODE` and only then re-reads whether that migration is recorded. A second `migrate` (another
 * process, or a daemon starting at the same moment) blocks on the lock, and once the first commits
 * it sees the new row and skips the migration, so each one is applied exactly once. The lock is a
 * table lock held by the transaction, not a session-level advisory lock: it is released at COMMIT
 * or ROLLBACK on the very connection that took it, which is exactly what a transaction-mode pooler
 * (PgBouncer pool_mode=transaction) guarantees, so it also serialises runs through a pooler.
 * Creating helix_migrations itself cannot lock the table that does not exist yet; that one
 * transaction uses pg_advisory_xact_lock, which is transaction-scoped and pooler-safe for the same reason.
 */
export async function migrate(
  db: DatabasePool,
  options: { dryRun?: boolean; files?: MigrationFile[] } = {},
): Promise<MigrateResult> {
  const files = options.files ?? (await loadMigrations())
  const before = await migrationState(db, files)
  refuseDrift(before)
  const alreadyApplied = [...before.applied]
  if (options.dryRun) return { dryRun: true, applied: before.pending, alreadyApplied }
  if (before.pending.length === 0) return { dryRun: false, applied: [], alreadyApplied }

  await ensureMigrationsTable(db)
  const applied: string[] = []
  for (const file of files.filter((f) => before.pending.includes(f.name))) {
    const ran = await db.transaction((client) => applyOne(client, file))
    if (ran) applied.push(file.name)
    else alreadyApplied.push(file.name)
  }
  return { dryRun: false, applied, alreadyApplied }
}

async function ensureMigrationsTable(db: DatabasePool): Promise<void> {
  await db.transaction(async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [BOOTSTRAP_LOCK_KEY])
    await client.query(MIGRATIONS_TABLE_DDL)
  })
}

/** Applies one migration under the table lock; false when a concurrent run applied it first. */
async function applyOne(client: pg.PoolClient, file: MigrationFile): Promise<boolean> {
  // Migrations may legitimately run longer than the pool's statement_timeout, and so may the wait
  // for a concurrent run's lock.
  await client.query('SET LOCAL statement_timeout = 0')
  await client.query(`LOCK TABLE ${MIGRATIONS_TABLE} IN EXCLUSIVE MODE`)
  const { rows } = await client.query<{ checksum: string }>(
    `SELECT checksum FROM ${MIGRATIONS_TABLE} WHERE version = $1`,
    [file.version],
  )
  if (rows.length > 0) {
    if (rows[0].checksum !== file.checksum)
      refuseDrift({ applied: [], pending: [], drift: [file.name], missing: [], schemaVersion: null })
    return false
  }
  const started = performance.now()
  try {
    await client.query(file.sql)
  } catch (err) {
    throw new Failure('MIGRATION_FAILED', `Migration ${file.name} failed: ${(err as Error).message}`, {
      hint: 'Nothing of this migration was applied (it ran in one transaction); fix the SQL and run `helix db migrate` again.',
      cause: err,
    })
  }
  await client.query(
    `INSERT INTO ${MIGRATIONS_TABLE} (version, name, checksum, execution_ms) VALUES ($1, $2, $3, $4)`,
    [file.version, file.name, file.checksum, Math.round(performance.now() - started)],
  )
  return true
}
