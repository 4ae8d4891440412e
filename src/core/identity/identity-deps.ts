import type { JSONWebKeySet } from 'jose'
import type { HelixConfig } from '../../shared/config.js'
import type { DatabasePool } from '../../state/db/pool.js'
import type { RateLimiter } from '../limits/limiter.js'
import type { CoreLogger } from '../logger.js'
import type { AccessTokenSigner, AccessTokenVerifier } from './access-token.js'
import type { ApiKeyCache } from './api-key-cache.js'
import type { Mailer } from './mail/mailer.js'
import type { Argon2Params } from './password-hash.js'

/** The JWT keys in use: one value, swapped as a whole when keys/ is re-read. */
export interface JwtKeys {
  signer: AccessTokenSigner
  /** The public keys (current and previous), for /.well-known/jwks.json. */
  jwks: JSONWebKeySet
  verify: AccessTokenVerifier
}

/** What the identity services need; commands pass only db and config. */
export interface IdentityDeps {
  db: DatabasePool
  config: HelixConfig
  mailer?: Mailer
  /** The daemon's JWT keys (absent in commands, which issue no tokens). */
  keys?: JwtKeys
  limiter?: RateLimiter
  /** Look-ups of API keys by hash, evicted by database change announcements (the daemon only). */
  apiKeyCache?: ApiKeyCache
  /** Writes buffered request logs now (before an erasure). */
  flushUsage?: () => Promise<void>
  /** Told the action of each audited sign-up, sign-in and key change (the daemon's metrics count them). */
  events?: (action: string) => void
  log?: CoreLogger
}

export function argon2Params(config: HelixConfig): Argon2Params {
  return {
    memoryKiB: config.auth.argon2.memory_kib,
    timeCost: config.auth.argon2.time_cost,
    parallelism: config.auth.argon2.parallelism,
  }
}

/** Where an action came from, for audit entries and session rows. */
export interface RequestOrigin {
  ip?: string | null
  userAgent?: string | null
}
