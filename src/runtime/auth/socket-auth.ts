import { invalidCredentials } from './auth-errors.js'
import { authenticateCredential } from './authenticator.js'
import type { IdentityDeps } from './identity-deps.js'
import type { Principal } from './principal.js'

/**
 * WebSocket routes. The upgrade request passes the daemon's onRequest auth hook like any request, so
 * `Authorization: Bearer …` on the upgrade works as usual. Browsers cannot set that header on a
 * WebSocket, so a route may declare `config: { socketAuth: 'first-message' }`: the upgrade is let
 * through without a credential and the first message must be {"type":"auth","token":"…"}.
 * While a socket is open its credential is re-checked; a revoked or expired one closes it.
 */

/** Close code for an authentication failure (4000–4999 are the application's, RFC 6455 §7.4.2). */
export const SOCKET_UNAUTHENTICATED = 4401

/** The route option that lets an upgrade through without a header credential. */
export interface SocketAuthRouteConfig {
  socketAuth?: 'first-message'
}

/** Reads {"type":"auth","token":"…"} and authenticates the token; anything else is UNAUTHENTICATED. */
export async function authenticateFirstMessage(
  deps: IdentityDeps,
  data: unknown,
): Promise<{ principal: Principal; credential: string }> {
  let message: unknown
  try {
    message = JSON.parse(Buffer.isBuffer(data) ? data.toString('utf8') : String(data))
  } catch {
    throw invalidCredentials()
  }
  const token = (message as { type?: unknown; token?: unknown } | null)?.token
  if ((message as { type?: unknown } | null)?.type !== 'auth' || typeof token !== 'string' || token === '')
    throw invalidCredentials()
  return { principal: await authenticateCredential(deps, token), credential: token }
}

/** What closeWhenRevoked needs of a socket (ws's WebSocket has it). */
export interface ClosableSocket {
  close(code?: number, reason?: string): void
  once(event: 'close', listener: () => void): unknown
}

/**
 * Re-checks the socket's credential every `recheckMs` (a cached API key costs no query) and closes the
 * socket with 4401 once it no longer authenticates: revoked, expired, user disabled or logged out.
 * Returns a function that stops the checks (also done when the socket closes).
 */
export function closeWhenRevoked(
  deps: IdentityDeps,
  credential: string,
  socket: ClosableSocket,
  recheckMs = 5000,
): () => void {
  let stopped = false
  const timer = setInterval(() => {
    authenticateCredential(deps, credential).catch(() => {
      if (stopped) return
      stop()
      socket.close(SOCKET_UNAUTHENTICATED, 'credential revoked or expired')
    })
  }, recheckMs)
  timer.unref()
  const stop = () => {
    stopped = true
    clearInterval(timer)
  }
  socket.once('close', stop)
  return stop
}
