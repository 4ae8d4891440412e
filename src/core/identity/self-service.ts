import type { HelixConfig } from '../../shared/config.js'
import { UserError } from '../../shared/errors.js'
import * as repos from '../../state/db/repositories/index.js'
import {
  createAccount,
  forgotPassword,
  type PreparedAccount,
  type PublicUser,
  prepareAccount,
  welcomeAccount,
} from './accounts.js'
import { forbidden } from './auth-errors.js'
import type { IdentityDeps, RequestOrigin } from './identity-deps.js'
import { registrationAttemptMessage } from './mail/auth-mail.js'
import { hashSecret } from './secret-hash.js'

/** The answer to a password-reset request, the same whether or not the address is registered. */
export const FORGOT_ANSWER = { message: 'If an account uses this address, a reset message is on its way.' }

/** The answer to every accepted registration while mail is configured, new address or taken. */
export const PENDING_VERIFICATION = {
  status: 'pending_verification',
  message: 'If this address can be registered, we have sent a verification e-mail.',
} as const

/**
 * What a registration answers: the new account where registration answers explicitly (no SMTP
 * server), else the same pending answer for a new address and a taken one.
 */
export type Registration =
  | { status: 'created'; user: PublicUser; advice?: string }
  | { status: 'pending_verification'; message: string; advice?: string }

/**
 * Whether registration answers alike for new and taken addresses. Only mail can tell the owner of a
 * taken address what happened and give a new one its verification link, so with mail.smtp_url unset
 * (mail goes to the outbox table, which only an administrator reads) registration answers 201 with
 * the account or 409 USER_EXISTS, and the address's existence shows.
 */
export function registrationIsUniform(config: HelixConfig): boolean {
  return Boolean(config.mail.smtp_url)
}

/** At most this many "someone tried to register" mails per address and hour: the form is no mail cannon. */
const ATTEMPT_NOTICES = { name: 'registration-notices-per-account', limit: 3, windowSeconds: 3600 }

/**
 * Self-service registration, which helix.yaml's auth.allow_registration can turn off.
 *
 * With mail configured the answer is given after the input checks and the argon2id hash, which both
 * paths do alike, and before the address is looked up: a new address then gets its account and the
 * verification mail, a taken one no change and a mail to its owner (ASVS V6.3.8, NIST SP 800-63B).
 */
export async function register(
  deps: IdentityDeps,
  account: { email: string; password: string; displayName: string | null },
  origin: RequestOrigin = {},
): Promise<Registration> {
  if (!deps.config.auth.allow_registration)
    throw forbidden('Self-service registration is turned off on this server.')
  if (!registrationIsUniform(deps.config))
    return { status: 'created', ...(await createAccount(deps, account, origin)) }
  const prepared = await prepareAccount(deps, account)
  setImmediate(() => {
    completeRegistration(deps, prepared, origin).catch((err: unknown) =>
      deps.log?.error({ err }, 'registration after the pending answer failed'),
    )
  })
  return { ...PENDING_VERIFICATION, ...(prepared.advice ? { advice: prepared.advice } : {}) }
}

/** The part of a uniform registration that depends on whether the address is taken. */
async function completeRegistration(
  deps: IdentityDeps,
  prepared: PreparedAccount,
  origin: RequestOrigin,
): Promise<void> {
  const { advice: _advice, ...user } = prepared
  let row: repos.users.UserRow
  try {
    row = await repos.users.createUser(deps.db, user)
  } catch (err) {
    if (err instanceof UserError && err.code === 'USER_EXISTS') {
      await noticeTakenAddress(deps, prepared.email, origin)
      return
    }
    throw err
  }
  await welcomeAccount(deps, row, origin)
}

/** Tells the owner of a taken address that someone tried to register it; their account is unchanged. */
async function noticeTakenAddress(deps: IdentityDeps, email: string, origin: RequestOrigin): Promise<void> {
  const owner = await repos.users.findUserByEmail(deps.db, email)
  if (!owner) return
  const within = deps.limiter
    ? (await deps.limiter.check(hashSecret(`register:${owner.email.toLowerCase()}`), ATTEMPT_NOTICES, 1))
        .allowed
    : true
  // A disabled account's owner can neither sign in nor reset: the mail would only mislead.
  const notified = within && !owner.disabled_at && deps.mailer !== undefined
  if (notified)
    await deps.mailer?.send(
      registrationAttemptMessage({ to: owner.email, publicUrl: deps.config.mail.public_url }),
    )
  await repos.audit.recordAudit(deps.db, {
    action: 'auth.register_taken',
    actorUserId: null,
    actor: 'anonymous',
    target: `user:${owner.id}`,
    ip: origin.ip ?? null,
    details: { notified },
  })
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
