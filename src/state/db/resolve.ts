import { resolve } from 'node:path'
import type { HelixConfig } from '../../shared/config.js'
import { Failure, UserError } from '../../shared/errors.js'
import type { HelixHome } from '../../shared/home.js'
import { embeddedUrl, readEmbeddedState } from './embedded-state.js'
import { redactUrl } from './redact.js'

export type DatabaseMode = 'embedded' | 'external'

/** Where the database is and how to reach it; `redactedUrl` is the only form ever displayed. */
export interface DatabaseTarget {
  mode: DatabaseMode
  url: string
  redactedUrl: string
  /** CA certificate file for sslmode=verify-full (database.ca_file). */
  caFile?: string
}

/** External when DATABASE_URL or database.url is set (loadConfig folds the env var in), else embedded. */
export function databaseMode(config: HelixConfig): DatabaseMode {
  return config.database.url ? 'external' : 'embedded'
}

/**
 * Returns the connection URL of this helix directory's database without starting anything: the
 * external URL as configured, or the embedded server's URL from what `helix db start` recorded.
 */
export async function resolveDatabase(home: HelixHome, config: HelixConfig): Promise<DatabaseTarget> {
  const external = config.database.url
  if (external) {
    if (!/^postgres(ql)?:\/\//.test(external)) {
      throw new UserError(
        'DB_URL_INVALID',
        `The database URL ${redactUrl(external)} is not a postgres:// URL.`,
        {
          hint: 'Set DATABASE_URL or database.url to postgresql://user:password@host:5432/dbname.',
        },
      )
    }
    return {
      mode: 'external',
      url: external,
      redactedUrl: redactUrl(external),
      ...(config.database.ca_file ? { caFile: resolve(home.root, config.database.ca_file) } : {}),
    }
  }
  const state = await readEmbeddedState(home)
  if (!state) {
    throw new Failure('DB_NOT_STARTED', `The embedded database in ${home.root} has never been started.`, {
      hint: 'Run `helix db start` (or set DATABASE_URL to use an external PostgreSQL).',
    })
  }
  const url = embeddedUrl(state)
  return { mode: 'embedded', url, redactedUrl: redactUrl(url) }
}
