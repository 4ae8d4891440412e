import * as repos from '../../state/db/repositories/index.js'
import { isValidApiKey, looksLikeApiKey } from './api-key-format.js'
import { invalidCredentials } from './auth-errors.js'
import type { IdentityDeps } from './identity-deps.js'
import type { Principal } from './principal.js'
import { hashSecret } from './secret-hash.js'
import { accessTokenState } from './session-state.js'

/** Extracts the credential of `Authorization: Bearer <credential>` (RFC 6750 §2.1); undefined if absent. */
export function bearerCredential(header: string | undefined): string | undefined {
  if (!header) return undefined
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*)\s*$/i.exec(header)
  return match ? match[1] : ''
}

async function apiKeyPrincipal(deps: IdentityDeps, key: string): Promise<Principal> {
  // A typo or a forged key fails the checksum here, without touching the database.
  if (!isValidApiKey(key)) throw invalidCredentials()
  const hash = hashSecret(key)
  const now = Date.now()
  const load = () => repos.apiKeys.findApiKeyByHash(deps.db, hash)
  // The cache also answers for known keys while the database is unavailable (stale-if-error).
  const row = deps.apiKeyCache ? await deps.apiKeyCache.lookup(hash, load, now) : await load()
  if (
    !row ||
    row.revoked_at ||
    (row.expires_at && row.expires_at.getTime() <= now) ||
    // a previous secret found in the cache may have left its grace period since
    (row.via === 'previous' && (!row.grace_until || row.grace_until.getTime() <= now))
  ) {
    throw invalidCredentials()
  }
  return {
    kind: 'apikey',
    ...(row.user_id ? { userId: row.user_id } : {}),
    keyId: row.id,
    scopes: row.scopes,
    models: row.models,
    rateLimitPerMin: row.rate_limit_per_min,
    quota: row.quota_period
      ? { requests: row.quota_requests, items: row.quota_items, period: row.quota_period }
      : null,
  }
}

async function accessTokenPrincipal(deps: IdentityDeps, token: string): Promise<Principal> {
  if (!deps.keys) throw invalidCredentials()
  const claims = await deps.keys.verify(token)
  const state = await accessTokenState(deps.db, {
    userId: claims.sub,
    jti: claims.jti,
    sessionId: claims.sid,
  })
  if (
    !state ||
    state.disabled ||
    state.jtiRevoked ||
    state.familyRevoked ||
    (state.passwordChangedAt !== null && claims.iat < state.passwordChangedAt)
  ) {
    throw invalidCredentials()
  }
  return {
    kind: 'user',
    userId: claims.sub,
    role: state.role,
    // A token minted while the user was an administrator loses admin rights as soon as the role changes.
    scopes:
      state.role === 'admin'
        ? claims.scope
        : claims.scope.filter((scope) => scope !== 'admin' && scope !== 'models:admin'),
    jti: claims.jti,
    ...(claims.sid ? { sessionId: claims.sid } : {}),
    tokenExpiresAt: new Date(claims.exp * 1000),
  }
}

/** Checks an API key or access JWT and says who it belongs to; every failure is UNAUTHENTICATED. */
export async function authenticateCredential(deps: IdentityDeps, credential: string): Promise<Principal> {
  return looksLikeApiKey(credential)
    ? apiKeyPrincipal(deps, credential)
    : accessTokenPrincipal(deps, credential)
}
