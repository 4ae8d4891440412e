import { UserError } from '../../shared/errors.js'

/**
 * One message for every failed credential: unknown user, wrong password, unknown/revoked/expired key
 * all read the same, so a failure never reveals whether an account or key exists (ASVS V6.3.8).
 */
export function invalidCredentials(): UserError {
  return new UserError('UNAUTHENTICATED', 'Invalid credentials.', {
    hint: 'Check the e-mail and password, or the API key; sign in again if your session ended.',
  })
}

export function missingCredentials(): UserError {
  return new UserError(
    'UNAUTHENTICATED',
    'This route needs credentials: send Authorization: Bearer <api key or access token>.',
    {
      hint: 'Create an API key with `helix apikeys create` or sign in with POST /auth/login.',
    },
  )
}

export function forbidden(message: string): UserError {
  return new UserError('FORBIDDEN', message, {
    hint: 'Use a key or account with the needed scope (infer, models:read, models:admin, monitor, admin).',
  })
}

export function notFound(what: string): UserError {
  return new UserError('NOT_FOUND', `${what} was not found.`, {
    hint: 'Check the id; list them to see what exists.',
  })
}

export function invalidToken(what: string): UserError {
  return new UserError('INVALID_TOKEN', `The ${what} is invalid, expired or already used.`, {
    hint: 'Request a new one; each token works once and only for a limited time.',
  })
}
