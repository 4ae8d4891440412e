import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import { isHelixError } from '../../shared/errors.js'
import type { DatabasePool } from '../../state/db/pool.js'
import type { RequestLogEntry } from '../../state/db/repositories/request-log.js'
import type { CoreLogger } from '../logger.js'
import type { Principal } from './principal.js'
import type { KeyCounters, UsageSpool } from './usage-spool.js'

/**
 * Counters are kept per key and quarter hour, and written to the hour PostgreSQL's date_trunc gives
 * that quarter hour: a batch retried after an outage still counts in the hour its requests came in,
 * and every real time-zone offset is a multiple of 15 minutes, so a quarter hour lies in one local hour.
 */
const SLOT_MS = 15 * 60_000

/**
 * Buffers per-request bookkeeping (usage counters, last-used time, request log) and writes it in one
 * transaction every `flushMs`: three writes per request would contend on the same usage row and cost
 * a commit each, which measured as a 40% throughput loss (bench/auth-overhead.js). Counters are summed
 * per key before writing, so a flush costs one upsert per active key plus one multi-row insert.
 *
 * While the database is unavailable (DATABASE_UNAVAILABLE) a batch is kept and written with the next
 * flush: its transaction rolled back, so it is written exactly once. At most `maxKeptRows` request-log
 * rows are kept; beyond that the oldest are dropped (counted by `onDropped`), while the counters,
 * a few numbers per key, are always kept. A batch the database refuses for another reason (a value it
 * cannot store) is dropped and logged, so one bad row cannot block the ones after it. What is still
 * kept when the daemon stops goes to the spool (data/usage-spool/), and the next daemon to start
 * writes it (replaySpool), once.
 */
export class UsageRecorder {
  private counters = new Map<string, KeyCounters>()
  /** The counters the last request went to (most requests in a row come from the same key). */
  private lastCounters: KeyCounters | undefined
  private requests: RequestLogEntry[] = []
  private readonly timer: NodeJS.Timeout
  private flushing: Promise<void> = Promise.resolve()
  /** Since when writes have failed with the database unavailable (undefined while they succeed). */
  private failingSince: number | undefined
  private droppedSinceWarning = 0
  private lastDropWarning = Number.NEGATIVE_INFINITY
  /** Told of each recorded request (the daemon's per-key metrics). */
  observer: ((entry: RequestLogEntry) => void) | undefined
  /** Told how many request-log rows were dropped because too many were kept during an outage. */
  onDropped: ((rows: number) => void) | undefined
  /** Where close() saves what the database did not take; without one it is lost (and logged). */
  spool: UsageSpool | undefined

  constructor(
    private readonly db: DatabasePool,
    private readonly log?: CoreLogger,
    flushMs = 1000,
    /** Beyond this many buffered requests a flush starts at once. */
    private readonly maxBuffered = 5000,
    /** Request-log rows kept while the database is unavailable; the oldest beyond it are dropped. */
    private readonly maxKeptRows = 100_000,
    private readonly now: () => number = Date.now,
  ) {
    this.timer = setInterval(() => void this.flush(), flushMs)
    this.timer.unref()
  }

  /** Request-log rows waiting to be written (including a batch kept from a failed write). */
  get pending(): number {
    return this.requests.length
  }

  /**
   * Records a request a principal made, on any face (REST, gRPC, WebSocket): the principal's user and
   * key, now, and served when the status is below 400. Nothing without a principal (auth off).
   */
  recordRequest(
    principal: Principal | undefined,
    request: Omit<RequestLogEntry, 'userId' | 'apiKeyId' | 'at'>,
  ): void {
    if (!principal) return
    // One object of one shape per request, no spreads: this runs for every request on every face.
    this.add(
      {
        requestId: request.requestId,
        userId: principal.userId ?? null,
        apiKeyId: principal.keyId ?? null,
        method: request.method,
        route: request.route,
        model: request.model ?? null,
        modelVersion: request.modelVersion ?? null,
        status: request.status,
        durationMs: request.durationMs,
        items: request.items ?? 0,
        tokens: request.tokens ?? 0,
        ip: request.ip ?? null,
        userAgent: request.userAgent ?? null,
        at: new Date(),
      },
      request.status < 400,
    )
  }

  record(entry: RequestLogEntry & { served: boolean }): void {
    const { served, ...request } = entry
    this.add(request, served)
  }

  private add(request: RequestLogEntry, served: boolean): void {
    this.requests.push(request)
    this.observer?.(request)
    if (request.apiKeyId) {
      const slot = Math.floor(this.now() / SLOT_MS) * SLOT_MS
      let c = this.lastCounters
      if (c === undefined || c.keyId !== request.apiKeyId || c.slot !== slot) {
        const id = `${request.apiKeyId} ${slot}`
        c = this.counters.get(id)
        if (!c) {
          c = { keyId: request.apiKeyId, slot, requests: 0, errors: 0, items: 0 }
          this.counters.set(id, c)
        }
        this.lastCounters = c
      }
      c.requests += 1
      if (request.status >= 400) c.errors += 1
      // Items count only when served; refused and failed requests count as requests and errors.
      if (served) c.items += request.items ?? 0
    }
    // During an outage the timer retries; an early flush per request would only fail again.
    if (this.requests.length >= this.maxBuffered && this.failingSince === undefined) void this.flush()
    else if (this.requests.length > this.maxKeptRows) this.dropOldest()
  }

  /**
   * Writes what is buffered; resolves when it (and any flush before it) is in the database, or was
   * kept for the next flush because the database is unavailable.
   */
  flush(): Promise<void> {
    const counters = this.counters
    const requests = this.requests
    this.counters = new Map()
    this.lastCounters = undefined
    this.requests = []
    this.flushing = this.flushing.then(async () => {
      if (requests.length === 0 && counters.size === 0) return
      try {
        await this.write(counters, requests)
        if (this.failingSince !== undefined) {
          this.log?.info(
            { requests: requests.length, unavailableMs: this.now() - this.failingSince },
            'database answers again: wrote the usage and request log kept meanwhile',
          )
          this.failingSince = undefined
        }
      } catch (err) {
        if (isHelixError(err) && err.code === 'DATABASE_UNAVAILABLE') {
          this.keep(counters, requests)
          if (this.failingSince === undefined) {
            this.failingSince = this.now()
            this.log?.warn(
              { err, requests: requests.length },
              'database unavailable: keeping usage and request log until it answers',
            )
          }
          return
        }
        // Bookkeeping must never fail a request; a lost batch is logged (without its contents).
        this.log?.error({ err, requests: requests.length }, 'writing usage and request log failed')
      }
    })
    return this.flushing
  }

  private async write(counters: Map<string, KeyCounters>, requests: RequestLogEntry[]): Promise<void> {
    await this.db.transaction((tx) => writeBatch(tx, [...counters.values()], requests))
  }

  /** Puts a batch whose write failed back in front of what was recorded since. */
  private keep(counters: Map<string, KeyCounters>, requests: RequestLogEntry[]): void {
    for (const [id, c] of counters) {
      const now = this.counters.get(id)
      if (now) {
        now.requests += c.requests
        now.errors += c.errors
        now.items += c.items
      } else this.counters.set(id, c)
    }
    this.requests = requests.concat(this.requests)
    if (this.requests.length > this.maxKeptRows) this.dropOldest()
  }

  private dropOldest(): void {
    const dropped = this.requests.length - this.maxKeptRows
    this.requests.splice(0, dropped)
    this.onDropped?.(dropped)
    this.droppedSinceWarning += dropped
    // Once full, every request drops one row: one warning a minute, not one per request.
    if (this.now() - this.lastDropWarning < 60_000) return
    this.lastDropWarning = this.now()
    this.log?.warn(
      { dropped: this.droppedSinceWarning, kept: this.maxKeptRows },
      'database unavailable too long: dropped the oldest request-log rows',
    )
    this.droppedSinceWarning = 0
  }

  async close(): Promise<void> {
    clearInterval(this.timer)
    await this.flush()
    if (this.requests.length === 0 && this.counters.size === 0) return
    const requests = this.requests
    if (this.spool) {
      try {
        const file = await this.spool.save([...this.counters.values()], requests)
        this.requests = []
        this.counters = new Map()
        this.log?.warn(
          { requests: requests.length, file },
          'database unavailable at shutdown: usage and request log saved; the next daemon to start writes them',
        )
        return
      } catch (err) {
        this.log?.error({ err }, 'saving the usage and request log kept during the outage failed')
      }
    }
    this.log?.error(
      { requests: requests.length },
      'database unavailable at shutdown: usage and request log not written',
    )
  }

  /**
   * Writes the batches earlier daemons saved at shutdown (oldest first), each once: its id goes into
   * usage_spool_replays in the same transaction, so a replica replaying the same file at the same
   * time, or a daemon stopped between the commit and deleting the file, cannot write it twice.
   * Rows of users erased meanwhile are left out, and keys deleted meanwhile are no longer named.
   * Stops at the first batch the database cannot take (unavailable: the next start tries again); a
   * batch it refuses is set aside (….failed) and logged. Returns the batches written.
   */
  async replaySpool(): Promise<number> {
    if (!this.spool) return 0
    let written = 0
    for (const file of await this.spool.files()) {
      try {
        const batch = await this.spool.read(file)
        const claimed = await this.db.transaction(async (tx) => {
          const claim = await tx.query(
            'INSERT INTO usage_spool_replays (id, request_rows) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING RETURNING id',
            [batch.id, batch.requests.length],
          )
          if (claim.rowCount === 0) return false
          const known = await stillKnown(tx, batch.counters, batch.requests)
          await writeBatch(tx, known.counters, known.requests)
          return true
        })
        await this.spool.remove(file)
        if (claimed) {
          written++
          this.log?.info(
            { requests: batch.requests.length, file },
            'wrote the usage and request log a daemon saved at shutdown',
          )
        }
      } catch (err) {
        if (isHelixError(err) && err.code === 'DATABASE_UNAVAILABLE') {
          this.log?.warn({ err, file }, 'database unavailable: the saved usage is written at the next start')
          break
        }
        const aside = await this.spool.setAside(file).catch(() => file)
        this.log?.error({ err, file: aside }, 'a saved usage batch cannot be written; set aside')
      }
    }
    return written
  }
}

/** Counters and request-log rows in one transaction: an upsert per key and hour, one COPY for the rows. */
async function writeBatch(
  tx: pg.PoolClient,
  counters: KeyCounters[],
  requests: RequestLogEntry[],
): Promise<void> {
  for (const c of counters) {
    await tx.query(
      `INSERT INTO api_key_usage AS u (key_id, hour, requests, errors, items) VALUES ($1, date_trunc('hour', $2::timestamptz), $3, $4, $5)
       ON CONFLICT (key_id, hour) DO UPDATE SET requests = u.requests + EXCLUDED.requests,
         errors = u.errors + EXCLUDED.errors, items = u.items + EXCLUDED.items`,
      [c.keyId, new Date(c.slot), c.requests, c.errors, c.items],
    )
  }
  if (counters.length > 0) {
    const keyIds = new Set(counters.map((c) => c.keyId))
    await tx.query('UPDATE api_keys SET last_used_at = now() WHERE id = ANY($1::uuid[])', [[...keyIds]])
  }
  if (requests.length === 0) return
  // COPY, PostgreSQL's bulk path: a sixth less CPU on the server than INSERT … unnest($1…$14)
  // and no per-element escaping by node-postgres (bench/README.md, full-stack-vs-echo).
  const copy = tx.query(copyFrom(`COPY request_log (${LOG_COLUMNS.join(', ')}) FROM STDIN`))
  await pipeline(Readable.from([requestLogRows(requests)]), copy)
}

/**
 * A saved batch as it may still be written: rows of users erased since (GDPR erasure removes them)
 * are dropped, keys deleted since are no longer named in the rows, and their counters are dropped.
 */
async function stillKnown(
  tx: pg.PoolClient,
  counters: KeyCounters[],
  requests: RequestLogEntry[],
): Promise<{ counters: KeyCounters[]; requests: RequestLogEntry[] }> {
  const ids = (values: (string | null | undefined)[]) => [...new Set(values.filter((v): v is string => !!v))]
  const existing = async (table: 'users' | 'api_keys', wanted: string[]) =>
    new Set(
      wanted.length === 0
        ? []
        : (
            await tx.query<{ id: string }>(`SELECT id::text AS id FROM ${table} WHERE id = ANY($1::uuid[])`, [
              wanted,
            ])
          ).rows.map((r) => r.id),
    )
  const users = await existing('users', ids(requests.map((r) => r.userId)))
  const keys = await existing(
    'api_keys',
    ids([...requests.map((r) => r.apiKeyId), ...counters.map((c) => c.keyId)]),
  )
  return {
    counters: counters.filter((c) => keys.has(c.keyId)),
    requests: requests
      .filter((r) => !r.userId || users.has(r.userId))
      .map((r) => (r.apiKeyId && !keys.has(r.apiKeyId) ? { ...r, apiKeyId: null } : r)),
  }
}

const LOG_COLUMNS = [
  'at',
  'request_id',
  'user_id',
  'api_key_id',
  'method',
  'route',
  'model',
  'model_version',
  'status',
  'duration_ms',
  'items',
  'tokens',
  'ip',
  'user_agent',
] as const

const COPY_ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  '\t': '\\t',
  '\n': '\\n',
  '\r': '\\r',
  // PostgreSQL text cannot hold NUL: a client-chosen value with one (a model name from the URL, a
  // User-Agent) would fail the whole batch's COPY and lose every request and usage count in it.
  '\0': '\uFFFD',
}
/** Longest text kept per field: client-chosen values (User-Agent, names in URLs) can be long. */
const MAX_FIELD_CHARS = 1024

/** One value in COPY's text format: \N for NULL, backslash escapes for \\ TAB LF CR, NUL replaced. */
export function copyValue(value: string | number | Date | null | undefined): string {
  if (value === null || value === undefined) return '\\N'
  let text = value instanceof Date ? value.toISOString() : String(value)
  if (text.length > MAX_FIELD_CHARS) text = text.slice(0, MAX_FIELD_CHARS)
  return /[\\\t\n\r\0]/.test(text) ? text.replace(/[\\\t\n\r\0]/g, (c) => COPY_ESCAPES[c]) : text
}

/** The buffered requests as COPY text rows, in LOG_COLUMNS order. */
export function requestLogRows(requests: RequestLogEntry[]): string {
  let out = ''
  for (const r of requests) {
    out += `${[
      r.at ?? new Date(),
      r.requestId,
      r.userId,
      r.apiKeyId,
      r.method,
      r.route,
      r.model,
      r.modelVersion,
      r.status,
      r.durationMs,
      r.items ?? 0,
      r.tokens ?? 0,
      r.ip,
      r.userAgent,
    ]
      .map(copyValue)
      .join('\t')}\n`
  }
  return out
}
