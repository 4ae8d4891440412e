import { embeddedDataDir, embeddedUrl, readEmbeddedState } from '../../runtime/db/embedded-state.js'
import {
  type MigrateResult,
  type MigrationState,
  migrate,
  migrationState,
} from '../../runtime/db/migrator.js'
import { type DatabasePool, openDatabase, type RetryOptions } from '../../runtime/db/pool.js'
import { redactUrl } from '../../runtime/db/redact.js'
import {
  type DatabaseMode,
  type DatabaseTarget,
  databaseMode,
  resolveDatabase,
} from '../../runtime/db/resolve.js'
import type { HelixConfig } from '../../shared/config.js'
import type { HelixHome } from '../../shared/home.js'
import {
  directorySize,
  type EmbeddedStartResult,
  type EmbeddedStopResult,
  runningPid,
  startEmbedded,
  stopEmbedded,
} from './embedded-server.js'

export interface ExternalResult {
  mode: 'external'
  url: string
  /** What start/stop did: nothing, an external server is not ours to start or stop. */
  started?: false
  stopped?: false
}

export type StartResult = EmbeddedStartResult | ExternalResult
export type StopResult = EmbeddedStopResult | ExternalResult

export interface StatusResult {
  mode: DatabaseMode
  /** Embedded: the server process runs. External: the server answered. */
  running: boolean
  reachable: boolean
  url?: string
  port?: number
  pid?: number
  dataDir?: string
  dataSizeBytes?: number
  serverVersion?: string
  /** Null when the database could not be reached. */
  migrations: MigrationState | null
  error?: string
}

export interface UrlResult {
  mode: DatabaseMode
  url: string
  redacted: boolean
}

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

export async function startDatabase(home: HelixHome, config: HelixConfig): Promise<StartResult> {
  if (databaseMode(config) === 'embedded') return startEmbedded(home, config)
  // Nothing to start, but a start that "succeeds" against an unreachable server would mislead.
  const target = await withDatabase(home, config, async (db) => db.target)
  return { mode: 'external', url: target.redactedUrl, started: false }
}

export async function stopDatabase(home: HelixHome, config: HelixConfig): Promise<StopResult> {
  if (databaseMode(config) === 'embedded') return stopEmbedded(home, config)
  const target = await resolveDatabase(home, config)
  return { mode: 'external', url: target.redactedUrl, stopped: false }
}

export async function databaseUrl(home: HelixHome, config: HelixConfig, redact: boolean): Promise<UrlResult> {
  const target = await resolveDatabase(home, config)
  return { mode: target.mode, url: redact ? target.redactedUrl : target.url, redacted: redact }
}

export async function runMigrations(
  home: HelixHome,
  config: HelixConfig,
  dryRun: boolean,
): Promise<MigrateResult> {
  return withDatabase(home, config, (db) => migrate(db, { dryRun }))
}

/** Running/stopped, where, how big, and the migration state; never throws for a stopped server. */
export async function databaseStatus(home: HelixHome, config: HelixConfig): Promise<StatusResult> {
  const mode = databaseMode(config)
  const status: StatusResult = { mode, running: false, reachable: false, migrations: null }
  let target: DatabaseTarget | undefined
  if (mode === 'embedded') {
    const dataDir = embeddedDataDir(home)
    const state = await readEmbeddedState(home)
    status.dataDir = dataDir
    status.dataSizeBytes = await directorySize(dataDir)
    status.pid = await runningPid(dataDir)
    status.running = status.pid !== undefined
    if (state) {
      status.port = state.port
      status.url = redactUrl(embeddedUrl(state))
    }
    if (!status.running || !state) return status
    target = await resolveDatabase(home, config)
  } else {
    target = await resolveDatabase(home, config)
    status.url = target.redactedUrl
  }
  let db: DatabasePool | undefined
  try {
    db = await openDatabase(target, config.database, { attempts: 1 })
    status.reachable = true
    status.running = true
    status.serverVersion = (await db.health()).serverVersion
    status.migrations = await migrationState(db)
  } catch (err) {
    status.error = (err as Error).message
  } finally {
    await db?.close()
  }
  return status
}
