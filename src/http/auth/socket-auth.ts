import { requireAccess } from '../../core/identity/access.js'
import { looksLikeApiKey } from '../../core/identity/api-key-format.js'
import { missingCredentials } from '../../core/identity/auth-errors.js'
import { authenticateCredential } from '../../core/identity/authenticator.js'
import type { Identity } from '../../core/identity/identity.js'
import type { Principal } from '../../core/identity/principal.js'
import { hashSecret } from '../../core/identity/secret-hash.js'
import { rateLimitGuard, refuseIfLimited } from '../../core/limits/guard.js'
import { isHelixError } from '../../shared/errors.js'
import * as repos from '../../state/db/repositories/index.js'

/** What a held credential has become since it was accepted. */
export type CredentialState = 'valid' | 'revoked' | 'expired'

/** One realtime request, for the usage counters and the request log. */
export interface SocketRequestRecord {
  principal: Principal | undefined
  /** The frame type: infer, embeddings or generate. */
  type: string
  requestId: string
  model: string
  version?: string
  /** The HTTP status the outcome stands for (200, or the error's). */
  status: number
  durationMs: number
  items: number
  tokens?: number
  ip: string
  userAgent?: string
}

/**
 * The WebSocket face of the identity layer: the same credentials, limits, scopes and usage records
 * as REST, with the credential arriving in the first frame instead of a header.
 */
export interface SocketAuth {
  /** False when the daemon runs without authentication: any token (or none) is accepted. */
  readonly required: boolean
  /**
   * The auth frame's token, checked as a Bearer token on REST. Throws UNAUTHENTICATED; undefined
   * when authentication is off. A failed attempt closes the socket, so each one costs an upgrade
   * request, which the per-IP limit counts like any other.
   */
  authenticate(token: string | undefined): Promise<Principal | undefined>
  /** Checks a connected credential again: revoked (or its user disabled) or expired since. */
  recheck(token: string, principal: Principal): Promise<CredentialState>
  /**
   * One request frame: the key's rate limit and request quota count it, the scope must allow the
   * model, and its items count against the items quota. Throws RATE_LIMITED or FORBIDDEN.
   */
  admit(principal: Principal | undefined, model: string, items: number): Promise<void>
  record(entry: SocketRequestRecord): void
}

/** Authentication off (auth.enabled: false, --no-auth): every socket may do everything, nothing is recorded. */
export const openSocketAuth: SocketAuth = {
  required: false,
  authenticate: async () => undefined,
  recheck: async () => 'valid',
  admit: async () => {},
  record: () => {},
}

/** The key that groups a principal's sockets and sessions: the API key (across rotations) or the user. */
export function principalKey(principal: Principal | undefined): string {
  if (!principal) return 'anonymous'
  return principal.keyId ? `apikey:${principal.keyId}` : `user:${principal.userId}`
}

export function socketAuth(identity: Identity): SocketAuth {
  const { deps, recorder } = identity
  const guard = rateLimitGuard(identity.limiter, deps.config)
  if (!deps.config.auth.enabled) return openSocketAuth

  /** Why a credential that no longer authenticates stopped working (an access token: revoked, or its user disabled). */
  async function whyRefused(token: string): Promise<CredentialState> {
    const now = Date.now()
    if (!looksLikeApiKey(token)) return 'revoked'
    const row = await repos.apiKeys.findApiKeyByHash(deps.db, hashSecret(token))
    const expired = row?.expires_at && row.expires_at.getTime() <= now && !row.revoked_at
    return expired ? 'expired' : 'revoked'
  }

  return {
    required: true,

    async authenticate(token) {
      if (!token) throw missingCredentials()
      return authenticateCredential(deps, token)
    },

    async recheck(token, principal) {
      // REST tolerates clock skew on exp; a socket ends at exp itself, which its client can plan for.
      const expiresAt = principal.tokenExpiresAt?.getTime()
      if (expiresAt !== undefined && expiresAt <= Date.now()) return 'expired'
      try {
        await authenticateCredential(deps, token)
        return 'valid'
      } catch (err) {
        // A database that does not answer is no verdict on the credential: the next check decides.
        if (!isHelixError(err) || err.code !== 'UNAUTHENTICATED') throw err
        return whyRefused(token)
      }
    },

    async admit(principal, model, items) {
      if (!principal) return
      refuseIfLimited(await guard.byPrincipal(principal))
      requireAccess(principal, { scope: 'infer', model })
      await guard.byItems(principal, items)
    },

    record(entry) {
      recorder.recordRequest(entry.principal, {
        requestId: entry.requestId,
        method: 'WS',
        route: `/v1/realtime#${entry.type}`,
        model: entry.model,
        modelVersion: entry.version ?? null,
        status: entry.status,
        durationMs: entry.durationMs,
        items: entry.items,
        ...(entry.tokens !== undefined ? { tokens: entry.tokens } : {}),
        ip: entry.ip,
        userAgent: entry.userAgent ?? null,
      })
    },
  }
}
