import type { HelixConfig } from '../../shared/config.js'
import { UserError } from '../../shared/errors.js'
import type { HelixHome } from '../../shared/home.js'
import { withDatabase } from '../../state/db/connect.js'
import { clusterDataDir, embeddedUrl, readEmbeddedState } from '../../state/db/embedded-state.js'
import { type MigrationState, migrationState } from '../../state/db/migrator.js'
import { type DatabasePool, openDatabase } from '../../state/db/pool.js'
import { redactUrl } from '../../state/db/redact.js'
import {
  type DatabaseMode,
  type DatabaseTarget,
  databaseMode,
  resolveDatabase,
} from '../../state/db/resolve.js'
import {
  destroyEmbedded,
  directorySize,
  type EmbeddedDestroyResult,
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
export type DestroyResult = EmbeddedDestroyResult

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
  /** Why the embedded cluster lives outside the helix directory, when it does. */
  relocatedBecause?: string
  /** The copied server binaries the embedded server runs, when it cannot run the installed ones. */
  binDir?: string
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

/** Removes the embedded cluster for good; an external database is not helix's to drop. */
export async function destroyDatabase(home: HelixHome, config: HelixConfig): Promise<DestroyResult> {
  if (databaseMode(config) === 'external') {
    throw new UserError('DB_EXTERNAL', 'helix does not destroy an external database (DATABASE_URL).', {
      hint: 'Drop it with your own tools (dropdb, or your provider), or unset DATABASE_URL to act on the embedded one.',
    })
  }
  return destroyEmbedded(home, config)
}

export async function databaseUrl(home: HelixHome, config: HelixConfig, redact: boolean): Promise<UrlResult> {
  const target = await resolveDatabase(home, config)
  return { mode: target.mode, url: redact ? target.redactedUrl : target.url, redacted: redact }
}

/** Running/stopped, where, how big, and the migration state; never throws for a stopped server. */
export async function databaseStatus(home: HelixHome, config: HelixConfig): Promise<StatusResult> {
  const mode = databaseMode(config)
  const status: StatusResult = { mode, running: false, reachable: false, migrations: null }
  let target: DatabaseTarget | undefined
  if (mode === 'embedded') {
    const state = await readEmbeddedState(home)
    const dataDir = clusterDataDir(home, state)
    status.dataDir = dataDir
    if (state?.relocated_because) status.relocatedBecause = state.relocated_because
    if (state?.bin_dir) status.binDir = state.bin_dir
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
