import { createAccount, forgotPassword, type PublicUser } from './accounts.js'
import { forbidden } from './auth-errors.js'
import type { IdentityDeps, RequestOrigin } from './identity-deps.js'

/** The answer to a password-reset request, the same whether or not the address is registered. */
export const FORGOT_ANSWER = { message: 'If an account uses this address, a reset message is on its way.' }

/** Self-service registration, which helix.yaml's auth.allow_registration can turn off. */
export async function register(
  deps: IdentityDeps,
  account: { email: string; password: string; displayName: string | null },
  origin: RequestOrigin = {},
): Promise<{ user: PublicUser; advice?: string }> {
  if (!deps.config.auth.allow_registration)
    throw forbidden('Self-service registration is turned off on this server.')
  return createAccount(deps, account, origin)
}

/**
 * Starts a password reset and answers at once: the answer cannot differ in content or time between
 * known and unknown addresses because nothing about the account is looked up before it is given.
 */
export function requestPasswordReset(
  deps: IdentityDeps,
  email: string,
  origin: RequestOrigin = {},
): typeof FORGOT_ANSWER {
  setImmediate(() => {
    forgotPassword(deps, email, origin).catch((err: unknown) =>
      deps.log?.error({ err }, 'password reset mail failed'),
    )
  })
  return FORGOT_ANSWER
}
