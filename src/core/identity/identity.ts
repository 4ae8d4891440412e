import { join } from 'node:path'
import type { HelixConfig } from '../../shared/config.js'
import type { HelixHome } from '../../shared/home.js'
import { connect } from '../../state/db/connect.js'
import type { DatabasePool } from '../../state/db/pool.js'
import { loadJwks, loadSigningKey } from '../../state/jwt/signing-key.js'
import type { RateLimiter } from '../limits/limiter.js'
import { MemoryRateLimiter } from '../limits/memory-limiter.js'
import { RedisRateLimiter } from '../limits/redis-limiter.js'
import { StoreErrorPolicy } from '../limits/store-errors.js'
import type { CoreLogger } from '../logger.js'
import { accessTokenVerifier } from './access-token.js'
import { ApiKeyCache } from './api-key-cache.js'
import type { IdentityDeps } from './identity-deps.js'
import { createMailer } from './mail/index.js'
import type { Mailer } from './mail/mailer.js'
import { purgeExpired } from './retention.js'
import { UsageRecorder } from './usage-recorder.js'
import { USAGE_SPOOL_DIR, UsageSpool } from './usage-spool.js'

export interface IdentityOptions {
  home: HelixHome
  config: HelixConfig
  db: DatabasePool
  log?: CoreLogger
  /** Overrides for tests; by default built from config (SMTP or outbox; Redis or memory). */
  mailer?: Mailer
  limiter?: RateLimiter
  /** How often signing keys and the JWKS are re-read, so `helix keys rotate` needs no restart. */
  keyReloadMs?: number
  /** How often buffered usage counters and request logs are written. */
  usageFlushMs?: number
  /** Cache API key look-ups (evicted on announced changes); on by default. */
  apiKeyCache?: boolean
  /** How often retention purges run (first run at start). */
  purgeEveryMs?: number
}

/**
 * The identity layer of the daemon, free of any protocol: each face (REST in src/http) builds its
 * authentication and routes on `deps`, `limiter` and `recorder`.
 */
export interface Identity {
  deps: IdentityDeps
  /** The limiter the guard uses: the store's, under rate_limit.on_store_error. */
  limiter: RateLimiter
  /** Where the counters live (Redis when configured, else in memory). */
  rateLimitStore: RateLimiter
  /** rate_limit.on_store_error over rateLimitStore (its metric hook and state). */
  storeErrors: StoreErrorPolicy
  /** Writes buffered usage counters and request logs now. */
  recorder: UsageRecorder
  /** Re-reads keys/ now. */
  reloadKeys(): Promise<void>
  close(): Promise<void>
}

/** Builds the identity layer of the daemon: keys, mail, limiter, usage recorder and retention purges. */
export async function createIdentity(options: IdentityOptions): Promise<Identity> {
  const { config, home, db } = options
  const rateLimitStore =
    options.limiter ?? (config.redis.url ? new RedisRateLimiter(config.redis.url) : new MemoryRateLimiter())
  const deps: IdentityDeps = {
    db,
    config,
    mailer: options.mailer ?? createMailer(config, db),
    limiter: rateLimitStore,
    ...(options.log ? { log: options.log } : {}),
  }
  const storeErrors = new StoreErrorPolicy(rateLimitStore, config.rate_limit.on_store_error, () => deps.log)
  // The in-process store cannot become unavailable: its checks skip the policy's extra promise.
  deps.limiter = rateLimitStore instanceof MemoryRateLimiter ? rateLimitStore : storeErrors
  const reloadKeys = async () => {
    const [signer, jwks] = await Promise.all([loadSigningKey(home), loadJwks(home)])
    const verify = accessTokenVerifier(jwks, { issuer: config.jwt.issuer, audience: config.jwt.audience })
    // One assignment: a request sees the old keys or the new ones, never a mix.
    deps.keys = { signer, jwks, verify }
  }
  await reloadKeys()
  if (options.apiKeyCache !== false) {
    const cache = new ApiKeyCache(db, options.log)
    await cache.start()
    deps.apiKeyCache = cache
  }
  const timer = setInterval(() => {
    reloadKeys().catch((err: unknown) =>
      deps.log?.error({ err }, 'reloading JWT keys failed; keeping the loaded ones'),
    )
  }, options.keyReloadMs ?? 60_000)
  timer.unref()

  const limiter = deps.limiter as RateLimiter
  const recorder = new UsageRecorder(db, options.log, options.usageFlushMs)
  // What a daemon stopped during a database outage saved, written now (the database answered: the
  // migrations ran); what this one cannot write at its own stop is saved there in turn.
  recorder.spool = new UsageSpool(join(home.dataDir, USAGE_SPOOL_DIR))
  void recorder
    .replaySpool()
    .catch((err: unknown) => deps.log?.error({ err }, 'writing the saved usage batches failed'))
  // Erasure must not be followed by a buffered request-log write naming the erased user.
  deps.flushUsage = () => recorder.flush()
  const purge = () =>
    purgeExpired(deps)
      .then((report) => deps.log?.info({ purged: report }, 'retention purge done'))
      .catch((err: unknown) => deps.log?.error({ err }, 'retention purge failed'))
  void purge()
  const purgeTimer = setInterval(purge, options.purgeEveryMs ?? 3_600_000)
  purgeTimer.unref()
  return {
    deps,
    limiter,
    rateLimitStore,
    storeErrors,
    recorder,
    reloadKeys,
    async close() {
      clearInterval(timer)
      clearInterval(purgeTimer)
      await recorder.close()
      await deps.apiKeyCache?.close()
      await limiter.close()
      await deps.mailer?.close()
    },
  }
}

/**
 * What `helix serve` calls: connects to the configured database (embedded or DATABASE_URL) and builds
 * the identity layer; close() also closes the pool.
 */
export async function openIdentity(
  home: HelixHome,
  config: HelixConfig,
  log?: CoreLogger,
): Promise<Identity> {
  const db = await connect(home, config, { attempts: 5 })
  try {
    const identity = await createIdentity({ home, config, db, ...(log ? { log } : {}) })
    return {
      ...identity,
      async close() {
        await identity.close()
        await db.close()
      },
    }
  } catch (err) {
    await db.close()
    throw err
  }
}
