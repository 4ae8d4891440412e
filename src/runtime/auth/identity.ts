import cors from '@fastify/cors'
import swagger from '@fastify/swagger'
import type { FastifyInstance } from 'fastify'
import { loadJwks, loadSigningKey } from '../../provision/jwt/signing-key.js'
import { connect } from '../../provision/postgres/database.js'
import type { HelixConfig } from '../../shared/config.js'
import type { HelixHome } from '../../shared/home.js'
import type { DatabasePool } from '../db/pool.js'
import { createMailer } from '../mail/index.js'
import type { Mailer } from '../mail/mailer.js'
import { type Authenticate, identityHooks } from '../plugins/auth.js'
import { globalPlugin } from '../plugins/global-plugin.js'
import { rateLimitGuard } from '../plugins/rate-limit.js'
import type { RateLimiter } from '../ratelimit/limiter.js'
import { MemoryRateLimiter } from '../ratelimit/memory-limiter.js'
import { RedisRateLimiter } from '../ratelimit/redis-limiter.js'
import { apiKeyRoutes } from '../routes/apikeys.js'
import { authRoutes } from '../routes/auth.js'
import { authMeRoutes } from '../routes/auth-me.js'
import { docsRoutes } from '../routes/docs.js'
import { accessTokenVerifier } from './access-token.js'
import { ApiKeyCache } from './api-key-cache.js'
import type { AuthLogger, IdentityDeps } from './identity-deps.js'
import { purgeExpired } from './retention.js'
import { UsageRecorder } from './usage-recorder.js'

export interface IdentityOptions {
  home: HelixHome
  config: HelixConfig
  db: DatabasePool
  log?: AuthLogger
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

export interface Identity {
  /** Pass as buildApp's `authenticate`: the hook plus the /auth, /docs and /openapi.json routes. */
  authenticate: Authenticate
  deps: IdentityDeps
  /** Writes buffered usage counters and request logs now. */
  recorder: UsageRecorder
  /** Re-reads keys/ now. */
  reloadKeys(): Promise<void>
  close(): Promise<void>
}

/** Version shown in the OpenAPI document. */
const API_VERSION = '2'

/** Builds the identity layer of the daemon: keys, mail, limiter, the auth hook and its routes. */
export async function createIdentity(options: IdentityOptions): Promise<Identity> {
  const { config, home, db } = options
  const deps: IdentityDeps = {
    db,
    config,
    mailer: options.mailer ?? createMailer(config, db),
    limiter:
      options.limiter ??
      (config.redis.url ? new RedisRateLimiter(config.redis.url) : new MemoryRateLimiter()),
    ...(options.log ? { log: options.log } : {}),
  }
  const reloadKeys = async () => {
    const [signer, jwks] = await Promise.all([loadSigningKey(home), loadJwks(home)])
    deps.signer = signer
    deps.jwks = jwks
    deps.verifyAccessToken = accessTokenVerifier(jwks, {
      issuer: config.jwt.issuer,
      audience: config.jwt.audience,
    })
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
  // Erasure must not be followed by a buffered request-log write naming the erased user.
  deps.flushUsage = () => recorder.flush()
  const purge = () =>
    purgeExpired(deps)
      .then((report) => deps.log?.info({ purged: report }, 'retention purge done'))
      .catch((err: unknown) => deps.log?.error({ err }, 'retention purge failed'))
  void purge()
  const purgeTimer = setInterval(purge, options.purgeEveryMs ?? 3_600_000)
  purgeTimer.unref()
  const hooks = identityHooks(deps, rateLimitGuard(limiter, config), recorder)
  const routes = globalPlugin('helix-identity', async (app: FastifyInstance) => {
    // Closed by default: with no configured origins no CORS headers are sent at all.
    await app.register(cors, {
      origin: config.auth.cors_origins.length > 0 ? config.auth.cors_origins : false,
      methods: ['GET', 'POST', 'PATCH', 'DELETE'],
      allowedHeaders: ['authorization', 'content-type', 'x-request-id', 'inference-header-content-length'],
      exposedHeaders: [
        'ratelimit',
        'ratelimit-policy',
        'retry-after',
        'x-request-id',
        'inference-header-content-length',
      ],
      maxAge: 600,
    })
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Helix',
          version: API_VERSION,
          description: 'KServe v2, OpenAI-compatible and account APIs of a Helix daemon.',
        },
        components: {
          securitySchemes: {
            bearer: { type: 'http', scheme: 'bearer', description: 'An API key (hx_…) or an access token.' },
          },
        },
        security: [{ bearer: [] }],
      },
    })
    app.addHook('preHandler', hooks.preHandler)
    app.addHook('onResponse', hooks.onResponse)
    await app.register(authRoutes, { deps })
    await app.register(authMeRoutes, { deps })
    await app.register(apiKeyRoutes, { deps })
    await app.register(docsRoutes, { title: 'Helix' })
  })
  const authenticate: Authenticate = Object.assign(hooks.authenticate, { routes })

  return {
    authenticate,
    deps,
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
 * the identity layer; close() also closes the pool. Pass `identity.authenticate` to buildApp.
 */
export async function openIdentity(
  home: HelixHome,
  config: HelixConfig,
  log?: AuthLogger,
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
