import type { DatabasePool } from '../db/pool.js'
import type { RequestLogEntry } from '../db/repositories/request-log.js'
import type { AuthLogger } from './identity-deps.js'

interface KeyCounters {
  requests: number
  errors: number
  items: number
}

/**
 * Buffers per-request bookkeeping (usage counters, last-used time, request log) and writes it in one
 * transaction every `flushMs`: three writes per request would contend on the same usage row and cost
 * a commit each, which measured as a 40% throughput loss (bench/auth-overhead.js). Counters are summed
 * per key before writing, so a flush costs one upsert per active key plus one multi-row insert.
 */
export class UsageRecorder {
  private counters = new Map<string, KeyCounters>()
  private requests: RequestLogEntry[] = []
  private readonly timer: NodeJS.Timeout
  private flushing: Promise<void> = Promise.resolve()

  constructor(
    private readonly db: DatabasePool,
    private readonly log?: AuthLogger,
    flushMs = 1000,
    /** Beyond this many buffered requests a flush starts at once. */
    private readonly maxBuffered = 5000,
  ) {
    this.timer = setInterval(() => void this.flush(), flushMs)
    this.timer.unref()
  }

  record(entry: RequestLogEntry & { served: boolean }): void {
    const { served, ...request } = entry
    this.requests.push(request)
    if (request.apiKeyId) {
      const c = this.counters.get(request.apiKeyId) ?? { requests: 0, errors: 0, items: 0 }
      c.requests += 1
      if (request.status >= 400) c.errors += 1
      // Items count only when served; refused and failed requests count as requests and errors.
      if (served) c.items += request.items ?? 0
      this.counters.set(request.apiKeyId, c)
    }
    if (this.requests.length >= this.maxBuffered) void this.flush()
  }

  /** Writes what is buffered; resolves when it (and any flush before it) is in the database. */
  flush(): Promise<void> {
    const counters = this.counters
    const requests = this.requests
    this.counters = new Map()
    this.requests = []
    this.flushing = this.flushing.then(async () => {
      if (requests.length === 0) return
      try {
        await this.db.transaction(async (tx) => {
          for (const [keyId, c] of counters) {
            await tx.query(
              `INSERT INTO api_key_usage AS u (key_id, hour, requests, errors, items) VALUES ($1, date_trunc('hour', now()), $2, $3, $4)
               ON CONFLICT (key_id, hour) DO UPDATE SET requests = u.requests + EXCLUDED.requests,
                 errors = u.errors + EXCLUDED.errors, items = u.items + EXCLUDED.items`,
              [keyId, c.requests, c.errors, c.items],
            )
          }
          if (counters.size > 0) {
            await tx.query('UPDATE api_keys SET last_used_at = now() WHERE id = ANY($1::uuid[])', [
              [...counters.keys()],
            ])
          }
          await tx.query(
            `INSERT INTO request_log (at, request_id, user_id, api_key_id, method, route, model, model_version, status,
                                      duration_ms, items, tokens, ip, user_agent)
             SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[],
                                  $8::text[], $9::int[], $10::float8[], $11::int[], $12::int[], $13::inet[], $14::text[])`,
            [
              requests.map((r) => r.at ?? new Date()),
              requests.map((r) => r.requestId),
              requests.map((r) => r.userId ?? null),
              requests.map((r) => r.apiKeyId ?? null),
              requests.map((r) => r.method),
              requests.map((r) => r.route),
              requests.map((r) => r.model ?? null),
              requests.map((r) => r.modelVersion ?? null),
              requests.map((r) => r.status),
              requests.map((r) => r.durationMs),
              requests.map((r) => r.items ?? 0),
              requests.map((r) => r.tokens ?? 0),
              requests.map((r) => r.ip ?? null),
              requests.map((r) => r.userAgent ?? null),
            ],
          )
        })
      } catch (err) {
        // Bookkeeping must never fail a request; a lost batch is logged (without its contents).
        this.log?.error({ err, requests: requests.length }, 'writing usage and request log failed')
      }
    })
    return this.flushing
  }

  async close(): Promise<void> {
    clearInterval(this.timer)
    await this.flush()
  }
}
