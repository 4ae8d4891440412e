import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import type { HelixConfig } from '../../shared/config.js'
import { Failure, isHelixError, UserError } from '../../shared/errors.js'
import { poolConfig } from './connection-options.js'
import type { DatabaseTarget } from './resolve.js'

/** Anything that runs a parameterised query: the pool, or a client inside a transaction. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>
}

export interface RetryOptions {
  /** Connection attempts before giving up (the first one included). */
  attempts?: number
  /** Delay before the second attempt; doubles each time, capped at maxDelayMs. */
  baseDelayMs?: number
  maxDelayMs?: number
}

export interface HealthReport {
  ok: boolean
  latencyMs: number
  serverVersion?: string
  error?: string
}

/**
 * The connection pool of one database target. It owns the pg.Pool's lifecycle: open with startup
 * retry, health check, graceful close. Errors on idle clients (a server restart) are kept for the
 * health check instead of crashing the process, which is pg.Pool's default for unhandled 'error'.
 */
export class DatabasePool implements Queryable {
  readonly pool: pg.Pool
  readonly target: DatabaseTarget
  private lastIdleError?: Error
  private closed = false

  constructor(target: DatabaseTarget, settings: HelixConfig['database']) {
    this.target = target
    this.pool = new pg.Pool(poolConfig(target, settings))
    this.pool.on('error', (err) => {
      this.lastIdleError = err
    })
  }

  /** A query on any pooled connection; a lost or refused connection throws DATABASE_UNAVAILABLE. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(text, values)
    } catch (err) {
      throw databaseError(err)
    }
  }

  /**
   * Runs fn inside BEGIN … COMMIT on one client; any throw rolls back. A lost or refused connection
   * throws DATABASE_UNAVAILABLE; nothing of the transaction was committed then (unless the connection
   * died while COMMIT itself was under way, which no client can tell apart).
   */
  async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient
    try {
      client = await this.pool.connect()
    } catch (err) {
      throw databaseError(err)
    }
    let broken: Error | undefined
    try {
      await client.query('BEGIN')
      const result = await fn(client)
      await client.query('COMMIT')
      return result
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined)
      // A client whose connection failed must not go back to the pool.
      if (isConnectionError(err)) broken = err as Error
      throw databaseError(err)
    } finally {
      client.release(broken)
    }
  }

  /**
   * Waits until the database answers, retrying with exponential backoff (a database container or
   * the embedded server may still be starting). Gives up with DB_UNREACHABLE naming the redacted URL.
   */
  async waitUntilReady(options: RetryOptions = {}): Promise<void> {
    const attempts = options.attempts ?? 5
    const maxDelay = options.maxDelayMs ?? 5_000
    let delay = options.baseDelayMs ?? 200
    for (let attempt = 1; ; attempt++) {
      try {
        await this.pool.query('SELECT 1')
        return
      } catch (err) {
        if (isHelixError(err) || attempt >= attempts || !isTransient(err)) throw unreachable(this.target, err)
        await sleep(delay)
        delay = Math.min(delay * 2, maxDelay)
      }
    }
  }

  async health(): Promise<HealthReport> {
    const started = performance.now()
    try {
      const { rows } = await this.pool.query<{ server_version: string }>('SHOW server_version')
      return { ok: true, latencyMs: performance.now() - started, serverVersion: rows[0].server_version }
    } catch (err) {
      return { ok: false, latencyMs: performance.now() - started, error: (err as Error).message }
    }
  }

  /** The error last raised by an idle connection, if any (for diagnostics). */
  get idleError(): Error | undefined {
    return this.lastIdleError
  }

  /** Waits for checked-out clients to be released, then closes every connection. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.pool.end()
  }
}

const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EAI_AGAIN', '57P03'])

/** Socket errors, and SQLSTATEs of a server that is shutting down, restarting or refusing sessions. */
const CONNECTION_CODES = new Set([
  ...TRANSIENT_CODES,
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
  '57P01', // admin_shutdown: `pg_ctl stop -m fast`
  '57P02', // crash_shutdown
  '53300', // too_many_connections
])

/**
 * Whether a database error means the server could not be reached or the connection died (as opposed
 * to an error of the statement itself): socket errors, SQLSTATE class 08 (connection exception), a
 * server shutting down, and node-postgres' own messages for a dead or timed-out connection.
 */
export function isConnectionError(err: unknown): boolean {
  if (isHelixError(err)) return false
  const e = err as { code?: unknown; message?: unknown }
  if (typeof e?.code === 'string' && (CONNECTION_CODES.has(e.code) || e.code.startsWith('08'))) return true
  const message = typeof e?.message === 'string' ? e.message : ''
  return /Connection terminated|terminated unexpectedly|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended unexpectedly|connect ECONNREFUSED/i.test(
    message,
  )
}

/**
 * SQLSTATEs of text PostgreSQL cannot store: 22021 (a NUL, U+0000, or an invalid byte sequence) and
 * 22P05 (a character without an equivalent in the server encoding). Whatever field carried it, the
 * value came from the caller: their mistake (400), never a server error.
 */
const UNSTORABLE_TEXT = new Set(['22021', '22P05'])

/**
 * DATABASE_UNAVAILABLE for a connection error (no URL, no SQL in the message); INVALID_INPUT for text
 * PostgreSQL cannot store; any other error as is.
 */
function databaseError(err: unknown): unknown {
  const code = (err as { code?: unknown })?.code
  if (typeof code === 'string' && UNSTORABLE_TEXT.has(code))
    return new UserError('INVALID_INPUT', 'Text fields cannot contain the NUL character (U+0000).', {
      hint: 'Remove control characters from names, e-mail addresses and other text fields.',
      cause: err,
    })
  if (!isConnectionError(err)) return err
  return new Failure('DATABASE_UNAVAILABLE', 'The database is unavailable; try again in a few seconds.', {
    hint: 'The daemon reconnects by itself once PostgreSQL answers again (check `helix db status` and helix_db_up).',
    cause: err,
  })
}

/** Connection refused, the server starting up (57P03) or a timeout may go away; a bad password will not. */
function isTransient(err: unknown): boolean {
  const e = err as { code?: string; message?: string }
  if (e?.code && TRANSIENT_CODES.has(e.code)) return true
  return /timeout|terminated unexpectedly|Connection terminated/i.test(e?.message ?? '')
}

/** DB_UNREACHABLE with the redacted URL and advice for the mode; never the password, never a stack. */
export function unreachable(target: DatabaseTarget, err: unknown): Failure {
  const reason = (err as Error)?.message?.split('\n')[0] ?? String(err)
  const hint =
    target.mode === 'embedded'
      ? 'Start the embedded server with `helix db start` (check `helix db status`).'
      : 'Check that the server runs and accepts connections from here, and the URL, password and TLS settings (DATABASE_URL / database.url, database.ca_file).'
  return new Failure('DB_UNREACHABLE', `Cannot reach the database at ${target.redactedUrl}: ${reason}`, {
    hint,
    cause: err,
    details: { url: target.redactedUrl, mode: target.mode },
  })
}

/** Opens a pool for the target and waits until the database answers. */
export async function openDatabase(
  target: DatabaseTarget,
  settings: HelixConfig['database'],
  retry: RetryOptions = {},
): Promise<DatabasePool> {
  const db = new DatabasePool(target, settings)
  try {
    await db.waitUntilReady(retry)
  } catch (err) {
    await db.close()
    throw err
  }
  return db
}
