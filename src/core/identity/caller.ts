import type { KeyActor } from './api-keys.js'
import { forbidden } from './auth-errors.js'
import type { Principal } from './principal.js'

/** The signed-in user's id; API keys without an owner cannot use the account services. */
export function accountUserId(principal: Principal | undefined): string {
  const id = principal?.userId
  if (!id) throw forbidden('This route needs a user account (sign in, or use a key that belongs to a user).')
  return id
}

/** The session a caller presents, for logout: the access token's id and its refresh family. */
export function sessionOf(principal: Principal | undefined): {
  userId: string
  jti?: string
  sessionId?: string
  tokenExpiresAt?: Date
} {
  return {
    userId: accountUserId(principal),
    jti: principal?.jti,
    sessionId: principal?.sessionId,
    tokenExpiresAt: principal?.tokenExpiresAt,
  }
}

/** The caller as a key manager: admins manage every key, others only their own. */
export function keyActorOf(principal: Principal | undefined): KeyActor {
  return {
    userId: principal?.userId ?? null,
    admin: principal?.scopes.includes('admin') ?? false,
    scopes: principal?.scopes ?? [],
    actor: principal?.kind === 'apikey' ? `apikey:${principal.keyId}` : `user:${principal?.userId}`,
    ...(principal?.kind === 'apikey' ? { viaApiKey: true } : {}),
  }
}
