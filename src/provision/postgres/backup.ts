import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream, type WriteStream } from 'node:fs'
import { open, rename, rm, stat } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import type pg from 'pg'
import { PRIVATE_MODE } from '../../shared/atomic-write.js'
import { UserError } from '../../shared/errors.js'
import { exists } from '../../shared/home.js'
import { MIGRATIONS_TABLE, readApplied } from '../../state/db/migrator.js'
import type { DatabasePool } from '../../state/db/pool.js'
import { BACKUP_MAGIC, type BackupManifest, END_MARK, TABLE_MARK } from './backup-format.js'
import { listTables, quoteIdent, tableContentChecksum } from './schema-tables.js'

export interface BackupResult {
  file: string
  bytes: number
  sha256: string
  schemaVersion: string | null
  tables: { name: string; rows: number }[]
}

const FETCH_ROWS = 1000

/** Writes to a stream, honouring backpressure. */
async function write(stream: WriteStream, data: string | Buffer): Promise<void> {
  if (!stream.write(data))
    await new Promise<void>((ok, fail) => {
      stream.once('drain', ok)
      stream.once('error', fail)
    })
}

async function finish(stream: WriteStream): Promise<void> {
  await new Promise<void>((ok, fail) => {
    stream.once('error', fail)
    stream.end(ok)
  })
}

/**
 * `helix db backup --out F`: a logical export that needs no pg_dump (embedded PostgreSQL ships
 * none, and the host's may be older than the server). All tables are read in one REPEATABLE READ
 * snapshot, so the backup is consistent while the daemon keeps writing. The file appears only when
 * complete (temp file + rename) and is 0600: it holds password and token hashes.
 */
export async function backupDatabase(db: DatabasePool, out: string): Promise<BackupResult> {
  const file = resolve(out)
  if (await exists(file)) {
    throw new UserError('BACKUP_EXISTS', `${file} already exists.`, {
      hint: 'Choose another --out path, or move the old backup away first.',
    })
  }
  const tag = randomBytes(6).toString('hex')
  const dataTemp = join(dirname(file), `.${basename(file)}.data-${tag}`)
  const finalTemp = join(dirname(file), `.${basename(file)}.tmp-${tag}`)
  try {
    const manifest = await db.transaction(async (client) => {
      await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY')
      await client.query('SET LOCAL statement_timeout = 0')
      return exportSnapshot(client, dataTemp)
    })
    const sha256 = await assemble(manifest, dataTemp, finalTemp)
    const handle = await open(finalTemp, 'r')
    await handle.sync().finally(() => handle.close())
    await rename(finalTemp, file)
    return {
      file,
      bytes: (await stat(file)).size,
      sha256,
      schemaVersion: manifest.schema_version,
      tables: manifest.tables.map((t) => ({ name: t.name, rows: t.rows })),
    }
  } finally {
    await rm(dataTemp, { force: true })
    await rm(finalTemp, { force: true })
  }
}

async function exportSnapshot(client: pg.PoolClient, dataFile: string): Promise<BackupManifest> {
  // applied_at as the server prints it: a JS Date would cut microseconds and change the ledger.
  const applied = (await readApplied(client)).length
    ? (
        await client.query<{
          version: number
          name: string
          checksum: string
          applied_at: string
          execution_ms: number
        }>(
          `SELECT version, name, checksum, to_jsonb(applied_at) #>> '{}' AS applied_at, execution_ms FROM ${MIGRATIONS_TABLE} ORDER BY version`,
        )
      ).rows
    : []
  const { rows: version } = await client.query<{ server_version: string }>('SHOW server_version')
  const manifest: BackupManifest = {
    format: 1,
    created_at: new Date().toISOString(),
    server_version: version[0].server_version,
    schema_version: applied.at(-1)?.name ?? null,
    migrations: applied.map((m) => ({
      version: m.version,
      name: m.name,
      checksum: m.checksum,
      applied_at: m.applied_at,
      execution_ms: m.execution_ms,
    })),
    tables: [],
  }
  const stream = createWriteStream(dataFile, { mode: PRIVATE_MODE, flags: 'wx' })
  try {
    for (const table of await listTables(client)) {
      await write(stream, `${TABLE_MARK}${table.name}\n`)
      const hash = createHash('sha256')
      let rows = 0
      const order = table.primaryKey.map(quoteIdent).join(', ')
      await client.query(
        `DECLARE helix_backup NO SCROLL CURSOR FOR SELECT to_jsonb(t)::text AS r FROM ${quoteIdent(table.name)} t ORDER BY ${order}`,
      )
      while (true) {
        const batch = await client.query<{ r: string }>(`FETCH ${FETCH_ROWS} FROM helix_backup`)
        if (batch.rows.length === 0) break
        const text = `${batch.rows.map((row) => row.r).join('\n')}\n`
        hash.update(text)
        rows += batch.rows.length
        await write(stream, text)
      }
      await client.query('CLOSE helix_backup')
      const content = await tableContentChecksum(client, table.name)
      manifest.tables.push({
        name: table.name,
        columns: table.columns,
        rows,
        sha256: hash.digest('hex'),
        content_sha256: content.sha256,
      })
    }
  } finally {
    await finish(stream)
  }
  return manifest
}

/** Header, manifest, the data sections, then the @end line with the hash of everything before it. */
async function assemble(manifest: BackupManifest, dataFile: string, target: string): Promise<string> {
  const hash = createHash('sha256')
  const stream = createWriteStream(target, { mode: PRIVATE_MODE, flags: 'wx' })
  try {
    const head = `${BACKUP_MAGIC}\n${JSON.stringify(manifest)}\n`
    hash.update(head)
    await write(stream, head)
    for await (const chunk of createReadStream(dataFile)) {
      hash.update(chunk as Buffer)
      await write(stream, chunk as Buffer)
    }
    const sha256 = hash.digest('hex')
    await write(stream, `${END_MARK}${sha256}\n`)
    return sha256
  } finally {
    await finish(stream)
  }
}
