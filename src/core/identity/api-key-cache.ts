import { randomUUID } from 'node:crypto'
import type pg from 'pg'
import { isHelixError } from '../../shared/errors.js'
import type { DatabasePool } from '../../state/db/pool.js'
import type { ApiKeyRow } from '../../state/db/repositories/api-keys.js'
import type { CoreLogger } from '../logger.js'

export const API_KEY_CHANNEL = 'helix_api_keys'

type CachedKey = ApiKeyRow & { via: 'current' | 'previous' }

interface Entry {
  row: CachedKey
  cachedAt: number
}

/**
 * Caches API key look-ups by hash, which saves a database round trip per request. Safe only because
 * every change to a key is announced by a trigger (migration 0003) on the helix_api_keys channel and
 * evicted here at once, on every replica. The cache serves only while that channel is proven to work:
 * after a start-up probe round-trips through it, and never while the listening connection is down
 * (a transaction-mode pooler, which cannot LISTEN, therefore simply runs uncached). Entries also
 * expire after `ttlMs` as a safety net; unknown hashes are never cached.
 *
 * Stale-if-error: while the database is unavailable, an entry is served for up to `maxStaleMs` past
 * its TTL, so inference with known keys rides out a database restart. An entry evicted by an
 * announcement (a revocation, rotation or change that was seen) is gone and is never served stale;
 * a key with no entry cannot be checked then and is refused with DATABASE_UNAVAILABLE (503).
 */
export class ApiKeyCache {
  private readonly entries = new Map<string, Entry>()
  private readonly hashesById = new Map<string, Set<string>>()
  private client?: pg.PoolClient
  private live = false
  private closed = false
  private retry?: NodeJS.Timeout
  /** Bumped by every eviction: a look-up that started before one must not be cached (it may be stale). */
  private epoch = 0
  /** Until when look-ups with a stale entry skip the database, after one found it unavailable. */
  private unavailableUntil = 0
  /** Whether the change channel was lost (so its return is logged). */
  private wasLost = false

  constructor(
    private readonly db: DatabasePool,
    private readonly log?: CoreLogger,
    private readonly ttlMs = 30_000,
    private readonly maxEntries = 100_000,
    private readonly maxStaleMs = 600_000,
  ) {}

  /** Whether look-ups are being served from memory (the change channel is proven live). */
  get active(): boolean {
    return this.live
  }

  get size(): number {
    return this.entries.size
  }

  get(hash: string, now = Date.now()): CachedKey | undefined {
    if (!this.live) return undefined
    const entry = this.entries.get(hash)
    if (!entry) return undefined
    if (now - entry.cachedAt > this.ttlMs) {
      // Past its TTL an entry is only a fallback for a database outage (stale()), until that expires too.
      if (now - entry.cachedAt > this.ttlMs + this.maxStaleMs) this.evictHash(hash)
      return undefined
    }
    return entry.row
  }

  /**
   * The entry of `hash` for use while the database is unavailable: within its TTL or up to
   * `maxStaleMs` past it, whether or not the change channel is live (nothing can change a key in a
   * database that does not answer); undefined when there is none or it was evicted.
   */
  stale(hash: string, now = Date.now()): CachedKey | undefined {
    const entry = this.entries.get(hash)
    if (!entry || now - entry.cachedAt > this.ttlMs + this.maxStaleMs) return undefined
    return entry.row
  }

  /**
   * Looks a hash up: from memory while fresh, else with `load` (cached when the channel is live).
   * When `load` finds the database unavailable, a stale entry answers instead, and for the next
   * second look-ups with a stale entry do not wait on the database; without one the error propagates.
   */
  async lookup(
    hash: string,
    load: () => Promise<CachedKey | undefined>,
    now = Date.now(),
  ): Promise<CachedKey | undefined> {
    const fresh = this.get(hash, now)
    if (fresh) return fresh
    if (now < this.unavailableUntil) {
      const stale = this.stale(hash, now)
      if (stale) return stale
    }
    const ticket = this.ticket()
    let row: CachedKey | undefined
    try {
      row = await load()
    } catch (err) {
      if (!isHelixError(err) || err.code !== 'DATABASE_UNAVAILABLE') throw err
      this.unavailableUntil = Date.now() + 1000
      const stale = this.stale(hash, now)
      if (!stale) throw err
      return stale
    }
    this.unavailableUntil = 0
    if (row) this.set(hash, row, ticket, now)
    return row
  }

  /** Taken before a database look-up and handed to set(), which refuses it if an eviction came in between. */
  ticket(): number {
    return this.epoch
  }

  set(hash: string, row: CachedKey, ticket: number, now = Date.now()): void {
    if (!this.live || ticket !== this.epoch) return
    if (this.entries.size >= this.maxEntries) this.clear()
    this.entries.set(hash, { row, cachedAt: now })
    let hashes = this.hashesById.get(row.id)
    if (!hashes) {
      hashes = new Set()
      this.hashesById.set(row.id, hashes)
    }
    hashes.add(hash)
  }

  /** Drops every cached secret of a key (its current and any previous secret). */
  evict(keyId: string): void {
    this.epoch++
    for (const hash of this.hashesById.get(keyId) ?? []) this.entries.delete(hash)
    this.hashesById.delete(keyId)
  }

  private evictHash(hash: string): void {
    const entry = this.entries.get(hash)
    this.entries.delete(hash)
    if (entry) this.hashesById.get(entry.row.id)?.delete(hash)
  }

  clear(): void {
    this.epoch++
    this.entries.clear()
    this.hashesById.clear()
  }

  /**
   * LISTENs on the change channel and proves it with a probe notification; resolves with whether the
   * cache is now active. Failures leave it inactive (uncached look-ups), never broken.
   */
  async start(probeTimeoutMs = 2000): Promise<boolean> {
    try {
      const client = await this.db.pool.connect()
      this.client = client
      const probe = `probe:${randomUUID()}`
      const heard = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), probeTimeoutMs)
        client.on('notification', (message) => {
          if (message.channel !== API_KEY_CHANNEL || !message.payload) return
          if (message.payload === probe) {
            clearTimeout(timer)
            resolve(true)
          } else {
            this.evict(message.payload)
          }
        })
      })
      client.on('error', (err) => this.lost(err))
      await client.query(`LISTEN ${API_KEY_CHANNEL}`)
      const { rowCount } = await this.db.query(
        "SELECT 1 FROM pg_trigger WHERE tgname = 'api_keys_announce_change'",
      )
      await this.db.query('SELECT pg_notify($1, $2)', [API_KEY_CHANNEL, probe])
      const live = rowCount === 1 && (await heard)
      // Entries kept while the channel was down may have missed announcements: start afresh.
      if (live) this.clear()
      this.live = live
      if (live && this.wasLost) {
        this.wasLost = false
        this.log?.info({}, 'API key cache on again: the change channel is back')
      }
      if (!this.live)
        this.log?.warn(
          {},
          'API key cache off: key changes are not announced (migration 0003, or a pooler without LISTEN)',
        )
    } catch (err) {
      this.lost(err)
    }
    return this.live
  }

  /**
   * The listening connection failed: stop serving from memory at once (entries stay only as the
   * stale-if-error fallback), and try again later.
   */
  private lost(err: unknown): void {
    this.live = false
    const client = this.client
    this.client = undefined
    client?.release(err instanceof Error ? err : true)
    if (this.closed) return
    // One warning per outage; the retries every 5 s while the database is down stay quiet.
    if (!this.wasLost)
      this.log?.warn({ err }, 'API key cache off: lost the change channel; retrying every 5 s')
    this.wasLost = true
    this.retry = setTimeout(() => void this.start(), 5000)
    this.retry.unref()
  }

  async close(): Promise<void> {
    this.closed = true
    this.live = false
    clearTimeout(this.retry)
    this.clear()
    const client = this.client
    this.client = undefined
    if (client) {
      await client.query(`UNLISTEN ${API_KEY_CHANNEL}`).catch(() => undefined)
      client.release()
    }
  }
}
