import type { Queryable } from '../pool.js'

/** One hour of one key's usage (`api_key_usage`). */
export interface UsageRow {
  key_id: string
  hour: Date
  requests: number
  errors: number
  tokens: number
  items: number
}

export interface UsageTotals {
  requests: number
  errors: number
  tokens: number
  items: number
}

export interface UsageIncrement {
  requests?: number
  errors?: number
  tokens?: number
  items?: number
  /** When it happened; counted in that hour (default now). */
  at?: Date
}

/** Adds to the key's counters for the hour, atomically (concurrent requests never lose counts). */
export async function recordUsage(
  db: Queryable,
  keyId: string,
  increment: UsageIncrement = {},
): Promise<void> {
  await db.query(
    `INSERT INTO api_key_usage AS u (key_id, hour, requests, errors, tokens, items)
     VALUES ($1, date_trunc('hour', coalesce($2::timestamptz, now())), $3, $4, $5, $6)
     ON CONFLICT (key_id, hour) DO UPDATE SET requests = u.requests + EXCLUDED.requests, errors = u.errors + EXCLUDED.errors,
       tokens = u.tokens + EXCLUDED.tokens, items = u.items + EXCLUDED.items`,
    [
      keyId,
      increment.at ?? null,
      increment.requests ?? 1,
      increment.errors ?? 0,
      increment.tokens ?? 0,
      increment.items ?? 0,
    ],
  )
}

/** Hourly rows of a key between since (inclusive) and until (exclusive), oldest first. */
export async function usageByHour(
  db: Queryable,
  keyId: string,
  range: { since: Date; until?: Date },
): Promise<UsageRow[]> {
  const { rows } = await db.query<UsageRow>(
    `SELECT key_id, hour, requests::float8 AS requests, errors::float8 AS errors, tokens::float8 AS tokens, items::float8 AS items
       FROM api_key_usage WHERE key_id = $1 AND hour >= date_trunc('hour', $2::timestamptz) AND ($3::timestamptz IS NULL OR hour < $3)
      ORDER BY hour`,
    [keyId, range.since, range.until ?? null],
  )
  return rows
}

/** Sums since a time (the start of the quota's day or month). */
export async function usageTotals(db: Queryable, keyId: string, since: Date): Promise<UsageTotals> {
  const { rows } = await db.query<UsageTotals>(
    `SELECT coalesce(sum(requests), 0)::float8 AS requests, coalesce(sum(errors), 0)::float8 AS errors,
            coalesce(sum(tokens), 0)::float8 AS tokens, coalesce(sum(items), 0)::float8 AS items
       FROM api_key_usage WHERE key_id = $1 AND hour >= date_trunc('hour', $2::timestamptz)`,
    [keyId, since],
  )
  return rows[0]
}
