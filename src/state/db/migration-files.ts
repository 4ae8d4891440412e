import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Failure } from '../../shared/errors.js'

/** One migrations/NNNN_name.sql file. */
export interface MigrationFile {
  version: number
  /** The file name, e.g. 0001_auth_schema.sql: what errors and status show. */
  name: string
  sql: string
  /** SHA-256 (hex) of the file's bytes, recorded when applied to detect later edits. */
  checksum: string
}

const MIGRATION_NAME = /^(\d{4})_[a-z0-9_]+\.sql$/

/**
 * The migrations shipped with helix: <package>/migrations, three levels above this file both in
 * src/ (tests) and dist/ (the built CLI). HELIX_MIGRATIONS_DIR points elsewhere (tests, forks).
 */
export function migrationsDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.HELIX_MIGRATIONS_DIR
    ? resolve(env.HELIX_MIGRATIONS_DIR)
    : resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'migrations')
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Reads and orders the migration files; a misnamed file or a duplicate version is refused. */
export async function loadMigrations(dir: string = migrationsDir()): Promise<MigrationFile[]> {
  let names: string[]
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.sql'))
  } catch {
    throw new Failure('MIGRATIONS_MISSING', `Cannot read the migrations directory ${dir}.`, {
      hint: 'Reinstall helix, or point HELIX_MIGRATIONS_DIR at a directory of NNNN_name.sql files.',
    })
  }
  const files: MigrationFile[] = []
  const seen = new Map<number, string>()
  for (const name of names.sort()) {
    const match = MIGRATION_NAME.exec(name)
    if (!match) {
      throw new Failure('MIGRATION_INVALID', `Migration file ${name} is not named NNNN_name.sql.`, {
        hint: `Rename it in ${dir} to four digits, an underscore and a lower-case name, e.g. 0002_add_outbox.sql.`,
      })
    }
    const version = Number(match[1])
    const other = seen.get(version)
    if (other) {
      throw new Failure('MIGRATION_INVALID', `Migrations ${other} and ${name} share version ${match[1]}.`, {
        hint: 'Give each migration its own number.',
      })
    }
    seen.set(version, name)
    const bytes = await readFile(join(dir, name))
    files.push({ version, name, sql: bytes.toString('utf8'), checksum: sha256Hex(bytes) })
  }
  return files
}
