import type { HelixConfig } from '../../shared/config.js'
import type { HelixHome } from '../../shared/home.js'
import { type MigrateResult, migrate } from './migrator.js'
import { type DatabasePool, openDatabase, type RetryOptions } from './pool.js'
import { resolveDatabase } from './resolve.js'

/** Opens the configured database (embedded or external), retrying while it starts up. */
export async function connect(
  home: HelixHome,
  config: HelixConfig,
  retry?: RetryOptions,
): Promise<DatabasePool> {
  const target = await resolveDatabase(home, config)
  return openDatabase(target, config.database, retry)
}

/** Runs fn with an open pool and always closes it. */
export async function withDatabase<T>(
  home: HelixHome,
  config: HelixConfig,
  fn: (db: DatabasePool) => Promise<T>,
  retry: RetryOptions = { attempts: 3 },
): Promise<T> {
  const db = await connect(home, config, retry)
  try {
    return await fn(db)
  } finally {
    await db.close()
  }
}

/** Applies pending migrations (or, with dryRun, lists them) on the configured database. */
export async function runMigrations(
  home: HelixHome,
  config: HelixConfig,
  dryRun: boolean,
): Promise<MigrateResult> {
  return withDatabase(home, config, (db) => migrate(db, { dryRun }))
}
