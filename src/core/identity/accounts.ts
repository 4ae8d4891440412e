import { UserError } from '../../shared/errors.js'
import * as repos from '../../state/db/repositories/index.js'
import { invalidCredentials, invalidToken, notFound } from './auth-errors.js'
import { argon2Params, type IdentityDeps, type RequestOrigin } from './identity-deps.js'
import { resetPasswordMessage, verifyEmailMessage } from './mail/auth-mail.js'
import { deleteOutboxFor } from './mail/outbox-mailer.js'
import { generateOpaqueToken, isWellFormedOpaqueToken } from './opaque-token.js'
import { hashPassword, verifyPassword } from './password-hash.js'
import { checkPasswordPolicy } from './password-policy.js'
import { hashSecret } from './secret-hash.js'
import { detachApiKeysOfUser } from './session-state.js'

/** A user as the API and CLI show it: never the password hash. */
export interface PublicUser {
  id: string
  email: string
  display_name: string | null
  role: 'user' | 'admin'
  email_verified: boolean
  disabled: boolean
  created_at: string
}

export function publicUser(row: repos.users.UserRow): PublicUser {
  return {
    id: row.id,
    email: row.email,
    display_name: row.display_name,
    role: row.role,
    email_verified: row.email_verified_at !== null,
    disabled: row.disabled_at !== null,
    created_at: row.created_at.toISOString(),
  }
}

/** A pragmatic address check (one @, a dot in the domain, no spaces); the mail itself proves it. */
const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,251}\.[^\s@]{1,63}$/

export function checkEmail(email: string): string {
  const trimmed = email.trim()
  if (!EMAIL.test(trimmed) && !/^[^\s@]+@localhost$/.test(trimmed)) {
    throw new UserError('EMAIL_INVALID', 'That is not a valid e-mail address.', {
      hint: 'Use an address like ada@example.com.',
    })
  }
  return trimmed
}

async function audit(deps: IdentityDeps, event: repos.audit.AuditEvent): Promise<void> {
  await repos.audit.recordAudit(deps.db, event)
}

/** Sends a single-use token by mail (SMTP or the outbox). */
async function mailToken(
  deps: IdentityDeps,
  user: repos.users.UserRow,
  purpose: repos.emailTokens.EmailTokenPurpose,
): Promise<void> {
  if (!deps.mailer) return
  const ttl =
    purpose === 'verify_email' ? deps.config.auth.verify_email_ttl_s : deps.config.auth.reset_password_ttl_s
  // A new code replaces any earlier one: only the latest mail works.
  await repos.emailTokens.invalidateEmailTokens(deps.db, user.id, purpose)
  const token = generateOpaqueToken()
  await repos.emailTokens.createEmailToken(deps.db, {
    userId: user.id,
    purpose,
    tokenHash: token.hash,
    expiresAt: new Date(Date.now() + ttl * 1000),
  })
  const values = {
    to: user.email,
    token: token.token,
    publicUrl: deps.config.mail.public_url,
    validMinutes: Math.round(ttl / 60),
  }
  await deps.mailer.send(
    purpose === 'verify_email' ? verifyEmailMessage(values) : resetPasswordMessage(values),
  )
}

/** At most this many verification reminders per address and hour, however often sign-in is tried. */
const VERIFICATION_REMINDERS = { name: 'verification-reminders-per-account', limit: 3, windowSeconds: 3600 }

/**
 * Mails a fresh verification link to an account that tried to sign in before confirming its address
 * (at most three an hour per address); the earlier link stops working. Returns whether it was sent.
 */
export async function remindVerification(deps: IdentityDeps, user: repos.users.UserRow): Promise<boolean> {
  if (!deps.mailer || user.disabled_at) return false
  if (deps.limiter) {
    const key = hashSecret(`verify-reminder:${user.email.toLowerCase()}`)
    if (!(await deps.limiter.check(key, VERIFICATION_REMINDERS, 1)).allowed) return false
  }
  await mailToken(deps, user, 'verify_email')
  return true
}

export interface NewAccount {
  email: string
  password?: string
  displayName?: string | null
  role?: 'user' | 'admin'
}

/** A new account's checked address and argon2id hash: the costly part of creating it, done first. */
export interface PreparedAccount {
  email: string
  passwordHash: string | null
  displayName: string | null
  role: 'user' | 'admin'
  /** Set when the password was accepted but a longer one is recommended. */
  advice?: string
}

/** Checks the address and the password policy and hashes the password; looks nothing up. */
export async function prepareAccount(deps: IdentityDeps, account: NewAccount): Promise<PreparedAccount> {
  const email = checkEmail(account.email)
  let passwordHash: string | null = null
  let advice: string | undefined
  if (account.password !== undefined) {
    advice = checkPasswordPolicy(account.password, deps.config.auth.password_min_length).advice
    passwordHash = await hashPassword(account.password, argon2Params(deps.config))
  }
  return {
    email,
    passwordHash,
    displayName: account.displayName ?? null,
    role: account.role ?? 'user',
    ...(advice ? { advice } : {}),
  }
}

/** What follows the insert of a new account: the sign-up event, its audit entry and the verification mail. */
export async function welcomeAccount(
  deps: IdentityDeps,
  row: repos.users.UserRow,
  origin: RequestOrigin & { actor?: string; actorUserId?: string | null } = {},
): Promise<void> {
  // An account made by someone else (an administrator, the CLI) is not a sign-up.
  deps.events?.(origin.actor ? 'user.create' : 'user.register')
  await audit(deps, {
    action: 'user.create',
    actorUserId: origin.actorUserId ?? row.id,
    actor: origin.actor ?? `user:${row.id}`,
    target: `user:${row.id}`,
    ip: origin.ip ?? null,
    details: { role: row.role },
  })
  await mailToken(deps, row, 'verify_email')
}

/** Creates an account (self-service registration or `helix users create`) and mails a verification link. */
export async function createAccount(
  deps: IdentityDeps,
  account: NewAccount,
  origin: RequestOrigin & { actor?: string; actorUserId?: string | null } = {},
): Promise<{ user: PublicUser; advice?: string }> {
  const { advice, ...prepared } = await prepareAccount(deps, account)
  const row = await repos.users.createUser(deps.db, prepared)
  await welcomeAccount(deps, row, origin)
  return { user: publicUser(row), ...(advice ? { advice } : {}) }
}

export async function getAccount(deps: IdentityDeps, userId: string): Promise<PublicUser> {
  const row = await repos.users.findUserById(deps.db, userId)
  if (!row) throw invalidCredentials()
  return publicUser(row)
}

export async function updateAccount(
  deps: IdentityDeps,
  userId: string,
  changes: { email?: string; displayName?: string | null },
  origin: RequestOrigin = {},
): Promise<PublicUser> {
  const email = changes.email === undefined ? undefined : checkEmail(changes.email)
  const row = await repos.users.updateUser(deps.db, userId, {
    ...(email !== undefined ? { email } : {}),
    ...('displayName' in changes ? { displayName: changes.displayName ?? null } : {}),
  })
  if (!row) throw invalidCredentials()
  await audit(deps, {
    action: 'user.update',
    actorUserId: userId,
    actor: `user:${userId}`,
    target: `user:${userId}`,
    ip: origin.ip ?? null,
    details: { fields: Object.keys(changes) },
  })
  if (email !== undefined && !row.email_verified_at) await mailToken(deps, row, 'verify_email')
  return publicUser(row)
}

/** Revokes every session and (optionally) key of a user: used by password change, disable and erase. */
async function endAllSessions(deps: IdentityDeps, userId: string, keysToo: boolean): Promise<void> {
  await repos.refreshTokens.revokeAllForUser(deps.db, userId)
  if (keysToo) await repos.apiKeys.revokeApiKeysOfUser(deps.db, userId)
}

export async function changePassword(
  deps: IdentityDeps,
  userId: string,
  passwords: { current: string; next: string },
  origin: RequestOrigin = {},
): Promise<{ changed: true; advice?: string }> {
  const row = await repos.users.findUserById(deps.db, userId)
  if (!row?.password_hash || !(await verifyPassword(row.password_hash, passwords.current)))
    throw invalidCredentials()
  const { advice } = checkPasswordPolicy(passwords.next, deps.config.auth.password_min_length)
  await repos.users.setPasswordHash(
    deps.db,
    userId,
    await hashPassword(passwords.next, argon2Params(deps.config)),
  )
  // ASVS V7.4.3: a password change ends every other session.
  await endAllSessions(deps, userId, false)
  await audit(deps, {
    action: 'auth.password_change',
    actorUserId: userId,
    actor: `user:${userId}`,
    ip: origin.ip ?? null,
  })
  return { changed: true, ...(advice ? { advice } : {}) }
}

/**
 * Starts a password reset. The caller answers before this work happens (see the route), so known and
 * unknown addresses look identical in body, status and time; this function never throws for an
 * unknown address.
 */
export async function forgotPassword(
  deps: IdentityDeps,
  email: string,
  origin: RequestOrigin = {},
): Promise<void> {
  const row = await repos.users.findUserByEmail(deps.db, email.trim())
  if (!row || row.disabled_at) return
  await mailToken(deps, row, 'reset_password')
  await audit(deps, {
    action: 'auth.password_forgot',
    actorUserId: row.id,
    actor: `user:${row.id}`,
    ip: origin.ip ?? null,
  })
}

/** Uses a reset token once: sets the new password and ends every session. */
export async function resetPassword(
  deps: IdentityDeps,
  input: { token: string; password: string },
  origin: RequestOrigin = {},
): Promise<{ reset: true; advice?: string }> {
  // Check the new password first so a weak one does not burn the token.
  const { advice } = checkPasswordPolicy(input.password, deps.config.auth.password_min_length)
  if (!isWellFormedOpaqueToken(input.token)) throw invalidToken('reset token')
  const used = await repos.emailTokens.consumeEmailToken(deps.db, hashSecret(input.token), 'reset_password')
  if (!used) throw invalidToken('reset token')
  await repos.users.setPasswordHash(
    deps.db,
    used.user_id,
    await hashPassword(input.password, argon2Params(deps.config)),
  )
  // Receiving the mail proves the address.
  await repos.users.markEmailVerified(deps.db, used.user_id)
  await endAllSessions(deps, used.user_id, false)
  await audit(deps, {
    action: 'auth.password_reset',
    actorUserId: used.user_id,
    actor: `user:${used.user_id}`,
    ip: origin.ip ?? null,
  })
  return { reset: true, ...(advice ? { advice } : {}) }
}

export async function verifyEmail(
  deps: IdentityDeps,
  token: string,
  origin: RequestOrigin = {},
): Promise<{ verified: true }> {
  if (!isWellFormedOpaqueToken(token)) throw invalidToken('verification token')
  const used = await repos.emailTokens.consumeEmailToken(deps.db, hashSecret(token), 'verify_email')
  if (!used) throw invalidToken('verification token')
  await repos.users.markEmailVerified(deps.db, used.user_id)
  await audit(deps, {
    action: 'auth.email_verified',
    actorUserId: used.user_id,
    actor: `user:${used.user_id}`,
    ip: origin.ip ?? null,
  })
  return { verified: true }
}

/** Finds a user by id or e-mail (what CLI arguments accept). */
export async function findAccount(deps: IdentityDeps, idOrEmail: string): Promise<repos.users.UserRow> {
  const row = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(idOrEmail)
    ? await repos.users.findUserById(deps.db, idOrEmail)
    : await repos.users.findUserByEmail(deps.db, idOrEmail)
  if (!row) throw notFound(`User ${idOrEmail}`)
  return row
}

export async function listAccounts(
  deps: IdentityDeps,
  options: { limit?: number; offset?: number } = {},
): Promise<PublicUser[]> {
  return (await repos.users.listUsers(deps.db, options)).map(publicUser)
}

/** Disables (or re-enables) an account; disabling ends every session and revokes every key. */
export async function setAccountDisabled(
  deps: IdentityDeps,
  idOrEmail: string,
  disabled: boolean,
  origin: RequestOrigin & { actor?: string; actorUserId?: string | null } = {},
): Promise<PublicUser> {
  const row = await findAccount(deps, idOrEmail)
  const updated = await repos.users.setUserDisabled(deps.db, row.id, disabled)
  if (disabled) await endAllSessions(deps, row.id, true)
  await audit(deps, {
    action: disabled ? 'user.disable' : 'user.enable',
    actorUserId: origin.actorUserId ?? null,
    actor: origin.actor ?? 'cli',
    target: `user:${row.id}`,
    ip: origin.ip ?? null,
  })
  return publicUser(updated ?? row)
}

export interface ErasureReport {
  id: string
  erased: true
  request_log_rows: number
  audit_entries_anonymised: number
  api_keys_detached: number
  mails_deleted: number
}

/**
 * GDPR erasure (Art. 17): deletes the account and everything that names the person — request logs,
 * outbox mail, sessions, e-mail tokens — anonymises their audit entries, and keeps only anonymous
 * usage counters of their (revoked, detached) keys.
 */
export async function eraseAccount(
  deps: IdentityDeps,
  idOrEmail: string,
  origin: RequestOrigin & { actor?: string; actorUserId?: string | null } = {},
): Promise<ErasureReport> {
  const row = await findAccount(deps, idOrEmail)
  await deps.flushUsage?.()
  const report = await deps.db.transaction(async (tx) => {
    const requestRows = await repos.requestLog.eraseRequestsOfUser(tx, row.id)
    const keys = await detachApiKeysOfUser(tx, row.id)
    const anonymised = await repos.audit.anonymiseAuditActor(tx, row.id)
    const mails = await deleteOutboxFor(tx, row.email)
    await repos.users.deleteUser(tx, row.id)
    await repos.audit.recordAudit(tx, {
      action: 'user.delete',
      actorUserId: origin.actorUserId && origin.actorUserId !== row.id ? origin.actorUserId : null,
      actor: origin.actor && origin.actorUserId !== row.id ? origin.actor : 'erased-user',
      target: 'user:erased',
    })
    return {
      request_log_rows: requestRows,
      audit_entries_anonymised: anonymised,
      api_keys_detached: keys,
      mails_deleted: mails,
    }
  })
  return { id: row.id, erased: true, ...report }
}

/** GDPR export (Art. 15/20): everything held about the user, secrets and hashes left out. */
export async function exportAccount(deps: IdentityDeps, userId: string): Promise<Record<string, unknown>> {
  const row = await repos.users.findUserById(deps.db, userId)
  if (!row) throw invalidCredentials()
  const keys = await repos.apiKeys.listApiKeys(deps.db, { userId, includeRevoked: true })
  const sessions = await repos.refreshTokens.listActiveSessions(deps.db, userId)
  const auditEntries = await repos.audit.listAudit(deps.db, { actorUserId: userId, limit: 100_000 })
  const requests = await repos.requestLog.listRequestsOfUser(deps.db, userId, { limit: 100_000 })
  const emailTokens = await repos.emailTokens.listEmailTokensOfUser(deps.db, userId)
  const usage = await Promise.all(
    keys.map((k) => repos.usage.usageByHour(deps.db, k.id, { since: new Date(0) })),
  )
  return {
    exported_at: new Date().toISOString(),
    profile: {
      ...publicUser(row),
      email_verified_at: row.email_verified_at,
      disabled_at: row.disabled_at,
      password_changed_at: row.password_changed_at,
      updated_at: row.updated_at,
    },
    api_keys: keys.map((k, i) => ({
      id: k.id,
      name: k.name,
      prefix: k.prefix,
      last4: k.last4,
      scopes: k.scopes,
      created_at: k.created_at,
      expires_at: k.expires_at,
      revoked_at: k.revoked_at,
      last_used_at: k.last_used_at,
      usage: usage[i],
    })),
    sessions: sessions.map((s) => ({
      id: s.id,
      created_at: s.created_at,
      expires_at: s.expires_at,
      ip: s.ip,
      user_agent: s.user_agent,
    })),
    email_tokens: emailTokens,
    audit: auditEntries,
    requests,
  }
}
