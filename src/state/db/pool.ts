import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import type { HelixConfig } from '../../shared/config.js'
import { Failure, isHelixError } from '../../shared/errors.js'
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

  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    return this.pool.query<R>(text, values)
  }

  /** Runs fn inside BEGIN … COMMIT on one client; any throw rolls back. */
  async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN')
      const result = await fn(client)
      await client.query('COMMIT')
      return result
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined)
      throw err
    } finally {
      client.release()
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
