import { createHash } from 'node:crypto'
import { resolve } from 'node:path'
import { Value } from '@sinclair/typebox/value'
import type pg from 'pg'
import { Failure, UserError } from '../../shared/errors.js'
import { exists } from '../../shared/home.js'
import { loadMigrations, type MigrationFile } from '../../state/db/migration-files.js'
import { MIGRATIONS_TABLE, MIGRATIONS_TABLE_DDL, readApplied } from '../../state/db/migrator.js'
import type { DatabasePool } from '../../state/db/pool.js'
import {
  BACKUP_MAGIC,
  type BackupManifest,
  BackupManifestSchema,
  END_MARK,
  readLines,
  TABLE_MARK,
} from './backup-format.js'
import { listTables, quoteIdent, tableContentChecksum } from './schema-tables.js'

export interface RestoreResult {
  file: string
  schemaVersion: string | null
  migrations: number
  tables: { name: string; rows: number }[]
}

const INSERT_ROWS = 500

function corrupt(file: string, why: string): Failure {
  return new Failure('BACKUP_CORRUPT', `${file} is damaged: ${why}. Nothing was restored.`, {
    hint: 'Use another copy of the backup; this one cannot be trusted.',
  })
}

/**
 * Reads the whole backup once and checks everything it can without a database: the header, the
 * manifest, every table section (name, order, row count, SHA-256) and the whole-file SHA-256 in the
 * @end line. Returns the manifest only when all of it holds.
 */
export async function verifyBackup(path: string): Promise<BackupManifest> {
  const file = resolve(path)
  if (!(await exists(file))) {
    throw new UserError('BACKUP_NOT_FOUND', `No backup at ${file}.`, {
      hint: 'Pass the path that `helix db backup --out` wrote.',
    })
  }
  const whole = createHash('sha256')
  let index = 0
  let manifest: BackupManifest | undefined
  let ended: string | undefined
  let table = -1
  let section = createHash('sha256')
  let rows = 0
  const closeSection = () => {
    if (!manifest || table < 0) return
    const expected = manifest.tables[table]
    const sha = section.digest('hex')
    if (rows !== expected.rows)
      throw corrupt(file, `table ${expected.name} has ${rows} rows, the manifest says ${expected.rows}`)
    if (sha !== expected.sha256) throw corrupt(file, `table ${expected.name} does not match its checksum`)
  }
  for await (const { line, terminated } of readLines(file)) {
    if (ended !== undefined) throw corrupt(file, 'data follows the end marker')
    const text = line.toString('utf8')
    if (index === 0) {
      if (text !== BACKUP_MAGIC) {
        throw new UserError('BACKUP_INVALID', `${file} is not a helix backup.`, {
          hint: 'Pass a file written by `helix db backup`.',
        })
      }
    } else if (index === 1) {
      manifest = parseManifest(file, text)
    } else if (text.startsWith(END_MARK) && terminated) {
      closeSection()
      ended = text.slice(END_MARK.length)
      continue
    } else if (text.startsWith(TABLE_MARK)) {
      closeSection()
      table++
      section = createHash('sha256')
      rows = 0
      const expected = manifest?.tables[table]
      if (!expected || expected.name !== text.slice(TABLE_MARK.length))
        throw corrupt(file, `unexpected section "${text}"`)
    } else if (table >= 0 && terminated) {
      section.update(line)
      section.update('\n')
      rows++
    } else if (terminated) {
      throw corrupt(file, 'rows outside a table section')
    }
    whole.update(line)
    if (terminated) whole.update('\n')
    index++
  }
  if (!manifest || ended === undefined) {
    throw new Failure(
      'BACKUP_TRUNCATED',
      `${file} is incomplete (it has no end marker). Nothing was restored.`,
      {
        hint: 'The copy was cut short; use a complete copy of the backup.',
      },
    )
  }
  if (whole.digest('hex') !== ended) throw corrupt(file, 'the file checksum does not match')
  if (table !== manifest.tables.length - 1) throw corrupt(file, 'tables listed in the manifest are missing')
  return manifest
}

function parseManifest(file: string, text: string): BackupManifest {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    throw corrupt(file, 'the manifest is not JSON')
  }
  if (!Value.Check(BackupManifestSchema, raw)) throw corrupt(file, 'the manifest is malformed')
  return raw
}

/** The backup's migrations must be exactly this helix's files, so the schema it recreates is the same. */
function matchMigrations(manifest: BackupManifest, files: MigrationFile[]): MigrationFile[] {
  const byVersion = new Map(files.map((f) => [f.version, f]))
  return manifest.migrations.map((m) => {
    const local = byVersion.get(m.version)
    if (!local || local.checksum !== m.checksum) {
      throw new Failure(
        'BACKUP_INCOMPATIBLE',
        `The backup was made with migration ${m.name}, which this helix ${local ? 'has in another version' : 'does not have'}.`,
        {
          hint: 'Restore with the helix version that made the backup, then upgrade and migrate.',
        },
      )
    }
    return local
  })
}

/**
 * `helix db restore F`: verifies the whole file first (nothing is written if any check fails), then,
 * in one transaction on an empty database, recreates the schema with the recorded migrations, loads
 * every row, resets identity sequences and proves with server-side checksums that the content equals
 * what was backed up before it commits. Any failure rolls everything back.
 */
export async function restoreDatabase(db: DatabasePool, path: string): Promise<RestoreResult> {
  const file = resolve(path)
  const manifest = await verifyBackup(file)
  const migrations = matchMigrations(manifest, await loadMigrations())
  if ((await listTables(db)).length > 0 || (await readApplied(db)).length > 0) {
    throw new UserError(
      'DB_NOT_EMPTY',
      'The target database already holds tables; restore only writes into an empty database.',
      {
        hint: 'Restore into a new database (point DATABASE_URL at it), or drop the helix tables first if you mean to replace them.',
      },
    )
  }
  await db.transaction(async (client) => {
    await client.query('SET LOCAL statement_timeout = 0')
    await client.query(MIGRATIONS_TABLE_DDL)
    for (const [i, migration] of migrations.entries()) {
      await client.query(migration.sql)
      const m = manifest.migrations[i]
      await client.query(
        `INSERT INTO ${MIGRATIONS_TABLE} (version, name, checksum, applied_at, execution_ms) VALUES ($1, $2, $3, $4, $5)`,
        [m.version, m.name, m.checksum, m.applied_at, m.execution_ms],
      )
    }
    // Foreign keys are DEFERRABLE (see the migrations): check them once, at COMMIT, after every table is loaded.
    await client.query('SET CONSTRAINTS ALL DEFERRED')
    // Audit entries come back with the hash chain they were backed up with (0004_audit_chain.sql).
    await client.query("SET LOCAL helix.audit_maintenance = 'restore'")
    await checkTables(client, manifest)
    await loadRows(client, file, manifest)
    for (const table of manifest.tables) await resetIdentity(client, table.name)
    for (const table of manifest.tables) {
      const content = await tableContentChecksum(client, table.name)
      if (content.sha256 !== table.content_sha256 || content.rows !== table.rows) {
        throw new Failure(
          'BACKUP_VERIFY_FAILED',
          `Restored table ${table.name} differs from the backup; nothing was restored.`,
          {
            hint: 'Restore into a server of the same major version, or report this with --verbose output.',
          },
        )
      }
    }
  })
  return {
    file,
    schemaVersion: manifest.schema_version,
    migrations: manifest.migrations.length,
    tables: manifest.tables.map((t) => ({ name: t.name, rows: t.rows })),
  }
}

async function checkTables(client: pg.PoolClient, manifest: BackupManifest): Promise<void> {
  const live = new Map((await listTables(client)).map((t) => [t.name, t.columns.join(',')]))
  for (const table of manifest.tables) {
    if (live.get(table.name) !== table.columns.join(',')) {
      throw new Failure(
        'BACKUP_INCOMPATIBLE',
        `Table ${table.name} in the backup does not match the schema its migrations create.`,
        {
          hint: 'Restore with the helix version that made the backup.',
        },
      )
    }
  }
}

/** Second pass over the file: batches of rows go in through jsonb_populate_recordset (typed by the table). */
async function loadRows(client: pg.PoolClient, file: string, manifest: BackupManifest): Promise<void> {
  let table: string | undefined
  let batch: string[] = []
  let section = createHash('sha256')
  const flush = async () => {
    if (!table || batch.length === 0) return
    const t = quoteIdent(table)
    await client.query(`INSERT INTO ${t} SELECT * FROM jsonb_populate_recordset(NULL::${t}, $1::jsonb)`, [
      `[${batch.join(',')}]`,
    ])
    batch = []
  }
  const closeSection = () => {
    // The file was verified, but it could have been replaced since: check again before COMMIT.
    const expected = manifest.tables.find((t) => t.name === table)
    if (table && section.digest('hex') !== expected?.sha256)
      throw corrupt(file, `table ${table} changed while restoring`)
  }
  let index = 0
  for await (const { line } of readLines(file)) {
    const text = line.toString('utf8')
    if (index++ < 2) continue
    if (text.startsWith(TABLE_MARK) || text.startsWith(END_MARK)) {
      await flush()
      closeSection()
      table = text.startsWith(TABLE_MARK) ? text.slice(TABLE_MARK.length) : undefined
      section = createHash('sha256')
      continue
    }
    section.update(line)
    section.update('\n')
    batch.push(text)
    if (batch.length >= INSERT_ROWS) await flush()
  }
}

/** Identity columns must continue after the restored ids, not collide with them. */
async function resetIdentity(client: pg.PoolClient, table: string): Promise<void> {
  const t = quoteIdent(table)
  const { rows } = await client.query<{ column: string }>(
    `SELECT attname AS column FROM pg_attribute WHERE attrelid = $1::regclass AND attidentity <> '' AND NOT attisdropped`,
    [t],
  )
  for (const { column } of rows) {
    const c = quoteIdent(column)
    await client.query(
      `SELECT setval(pg_get_serial_sequence($1, $2), coalesce((SELECT max(${c}) FROM ${t}), 1), (SELECT max(${c}) FROM ${t}) IS NOT NULL)`,
      [t, column],
    )
  }
}
