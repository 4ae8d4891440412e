import { Failure, UserError } from '../../shared/errors.js'
import * as repos from '../../state/db/repositories/index.js'
import { issueAccessToken } from './access-token.js'
import { remindVerification } from './accounts.js'
import { forbidden, invalidCredentials } from './auth-errors.js'
import { argon2Params, type IdentityDeps, type RequestOrigin } from './identity-deps.js'
import { generateOpaqueToken, isWellFormedOpaqueToken } from './opaque-token.js'
import { hashPassword, needsRehash, verifyAgainstDummy, verifyPassword } from './password-hash.js'
import { userScopes } from './scopes.js'
import { hashSecret } from './secret-hash.js'
import { registrationIsUniform } from './self-service.js'
import { familyOfRefreshHash } from './session-state.js'

/** What /auth/login and /auth/refresh return (OAuth 2.0 token response shape). */
export interface TokenResponse {
  access_token: string
  refresh_token: string
  token_type: 'Bearer'
  expires_in: number
}

function requireSigner(deps: IdentityDeps) {
  if (!deps.keys) {
    throw new Failure('KEYS_MISSING', 'No JWT signing key is loaded.', {
      hint: 'Run `helix keys generate` (or `helix init`).',
    })
  }
  return deps.keys.signer
}

/** Issues an access token and a refresh token in `familyId` (a new family for a new login). */
async function issueSession(
  deps: IdentityDeps,
  user: repos.users.UserRow,
  origin: RequestOrigin,
  family?: { familyId: string; parentId: string },
): Promise<TokenResponse> {
  const signer = requireSigner(deps)
  const refresh = generateOpaqueToken()
  const row = await repos.refreshTokens.insertRefreshToken(deps.db, {
    userId: user.id,
    familyId: family?.familyId,
    parentId: family?.parentId ?? null,
    tokenHash: refresh.hash,
    expiresAt: new Date(Date.now() + deps.config.auth.refresh_ttl_s * 1000),
    ip: origin.ip ?? null,
    userAgent: origin.userAgent ?? null,
  })
  const access = await issueAccessToken(
    signer,
    {
      issuer: deps.config.jwt.issuer,
      audience: deps.config.jwt.audience,
      ttlSeconds: deps.config.jwt.access_ttl_s,
    },
    { sub: user.id, scope: userScopes(user.role), sid: row.family_id },
  )
  return {
    access_token: access.token,
    refresh_token: refresh.token,
    token_type: 'Bearer',
    expires_in: access.expiresIn,
  }
}

/**
 * Failed sign-ins per account (auth.login_max_failures within auth.login_throttle_s), counted by the
 * e-mail whether or not an account has it, so a locked answer says nothing about existence. Past the
 * limit every attempt on that e-mail is refused until the window ends, the right password included:
 * guessing one account's password from many addresses stays slow. Without a limiter (commands) there
 * is no throttle.
 */
function loginThrottle(deps: IdentityDeps, email: string) {
  const limiter = deps.limiter
  if (!limiter) return undefined
  const policy = {
    name: 'login-failures-per-account',
    limit: deps.config.auth.login_max_failures,
    windowSeconds: deps.config.auth.login_throttle_s,
  }
  const key = hashSecret(`login:${email.trim().toLowerCase()}`)
  return {
    async refuseWhileLocked(origin: RequestOrigin): Promise<void> {
      const seen = await limiter.check(key, policy, 0)
      if (seen.remaining > 0) return
      await repos.audit.recordAudit(deps.db, {
        action: 'auth.login_throttled',
        actor: 'anonymous',
        ip: origin.ip ?? null,
        details: { retry_after_s: seen.resetSeconds },
      })
      throw new UserError('RATE_LIMITED', 'Too many failed sign-ins for this account; try again later.', {
        hint: 'Wait for the number of seconds in Retry-After, or reset the password.',
        details: { retryAfterSeconds: seen.resetSeconds },
      })
    },
    async countFailure(): Promise<void> {
      await limiter.check(key, policy, 1)
    },
  }
}

/**
 * Password login. Unknown e-mails cost the same argon2 verification as known ones, and every failure
 * gives the same answer; both outcomes are audited.
 */
export async function login(
  deps: IdentityDeps,
  credentials: { email: string; password: string },
  origin: RequestOrigin = {},
): Promise<TokenResponse> {
  const throttle = loginThrottle(deps, credentials.email)
  await throttle?.refuseWhileLocked(origin)
  const user = await repos.users.findUserByEmail(deps.db, credentials.email)
  const params = argon2Params(deps.config)
  const ok =
    user?.password_hash != null
      ? await verifyPassword(user.password_hash, credentials.password)
      : await verifyAgainstDummy(credentials.password, params)
  /** Every refused sign-in: one answer, counted, audited, and towards the account's lockout. */
  const refuse = async (action: string, details?: Record<string, unknown>): Promise<never> => {
    deps.events?.('auth.login_failed')
    await repos.audit.recordAudit(deps.db, {
      action,
      actorUserId: user?.id ?? null,
      actor: user ? `user:${user.id}` : 'anonymous',
      ip: origin.ip ?? null,
      ...(details ? { details } : {}),
    })
    await throttle?.countFailure()
    throw invalidCredentials()
  }
  if (!user || !ok || user.disabled_at) {
    return refuse('auth.login_failed', {
      reason: !user ? 'unknown_email' : !ok ? 'bad_password' : 'disabled',
    })
  }
  if (deps.config.auth.require_email_verification && !user.email_verified_at) {
    if (!registrationIsUniform(deps.config))
      throw forbidden('Verify your e-mail address before signing in (see the mail sent at registration).')
    // Where registration answers a taken address as a new one, this answer must not tell a registrant
    // that the address was new (their password works, the account waits for confirmation) from
    // taken (their password is wrong): it is the wrong-password answer, and the address's owner gets
    // a fresh verification link by mail, which only they can read.
    setImmediate(() => {
      remindVerification(deps, user).catch((err: unknown) =>
        deps.log?.error({ err }, 'verification reminder mail failed'),
      )
    })
    return refuse('auth.login_unverified')
  }
  if (user.password_hash && needsRehash(user.password_hash, params)) {
    // The stored hash predates a cost increase: upgrade it while the password is at hand.
    await repos.users.setPasswordHash(deps.db, user.id, await hashPassword(credentials.password, params))
  }
  const tokens = await issueSession(deps, user, origin)
  deps.events?.('auth.login')
  await repos.audit.recordAudit(deps.db, {
    action: 'auth.login',
    actorUserId: user.id,
    actor: `user:${user.id}`,
    ip: origin.ip ?? null,
  })
  return tokens
}

/**
 * Rotates a refresh token (RFC 9700 §4.14). The claim is atomic, so of two uses of one token exactly
 * one wins; any other use of a used or revoked token is reuse — the whole family is revoked (the
 * newest token stops working too) and the event audited.
 */
export async function refresh(
  deps: IdentityDeps,
  refreshToken: string,
  origin: RequestOrigin = {},
): Promise<TokenResponse> {
  if (!isWellFormedOpaqueToken(refreshToken)) throw invalidCredentials()
  const tokenHash = hashSecret(refreshToken)
  const claimed = await repos.refreshTokens.claimRefreshToken(deps.db, tokenHash)
  if (!claimed) {
    const known = await repos.refreshTokens.findRefreshTokenByHash(deps.db, tokenHash)
    if (known?.used_at) {
      const revoked = await repos.refreshTokens.revokeFamily(deps.db, known.family_id)
      await repos.audit.recordAudit(deps.db, {
        action: 'auth.refresh_reuse',
        actorUserId: known.user_id,
        actor: `user:${known.user_id}`,
        target: `session:${known.family_id}`,
        ip: origin.ip ?? null,
        details: { revoked_tokens: revoked },
      })
      deps.log?.warn(
        { userId: known.user_id, family: known.family_id },
        'refresh token reuse: session family revoked',
      )
    }
    throw invalidCredentials()
  }
  const user = await repos.users.findUserById(deps.db, claimed.user_id)
  if (!user || user.disabled_at) throw invalidCredentials()
  return issueSession(deps, user, origin, { familyId: claimed.family_id, parentId: claimed.id })
}

/**
 * Logout: revokes the session's refresh family and the presented access token's jti, so both stop
 * working at once everywhere.
 */
export async function logout(
  deps: IdentityDeps,
  session: { userId: string; jti?: string; sessionId?: string; tokenExpiresAt?: Date; refreshToken?: string },
  origin: RequestOrigin = {},
): Promise<{ revoked: boolean }> {
  let family = session.sessionId
  if (session.refreshToken && isWellFormedOpaqueToken(session.refreshToken)) {
    family = (await familyOfRefreshHash(deps.db, hashSecret(session.refreshToken), session.userId)) ?? family
  }
  if (family) await repos.refreshTokens.revokeFamily(deps.db, family)
  if (session.jti && session.tokenExpiresAt) {
    await repos.revokedTokens.revokeAccessToken(deps.db, {
      jti: session.jti,
      userId: session.userId,
      expiresAt: session.tokenExpiresAt,
      reason: 'logout',
    })
  }
  await repos.audit.recordAudit(deps.db, {
    action: 'auth.logout',
    actorUserId: session.userId,
    actor: `user:${session.userId}`,
    target: family ? `session:${family}` : null,
    ip: origin.ip ?? null,
  })
  return { revoked: Boolean(family || session.jti) }
}
