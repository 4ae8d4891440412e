import type { ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js'
import * as accounts from '../../core/identity/accounts.js'
import * as keys from '../../core/identity/api-keys.js'
import {
  CreateKeyInput,
  ForgotInput,
  KeyIdInput,
  LoginInput,
  LogoutInput,
  RefreshInput,
  RegisterInput,
  ResetInput,
  RotateInput,
  UpdateProfileInput,
  VerifyInput,
} from '../../core/identity/auth-inputs.js'
import { accountUserId, keyActorOf, sessionOf } from '../../core/identity/caller.js'
import type { Identity } from '../../core/identity/identity.js'
import type { RequestOrigin } from '../../core/identity/identity-deps.js'
import { checkInput } from '../../core/identity/input-check.js'
import { listKeysFilter, newKeyRequest } from '../../core/identity/key-requests.js'
import type { Principal } from '../../core/identity/principal.js'
import { register, requestPasswordReset } from '../../core/identity/self-service.js'
import * as sessions from '../../core/identity/sessions.js'
import { UserError } from '../../shared/errors.js'
import { type GrpcAccess, metadataValue } from '../call-auth.js'
import { type GrpcContext, unary } from '../calls.js'
import {
  type ApiKeysRequestMessage,
  apiKeyMessage,
  apiKeySecretMessage,
  createKeyInput,
  given,
  registerMessage,
  userMessage,
} from './messages.js'

const SERVICE = '/helix.auth.v1.AuthService'

/** What names the whole request in refusals (REST says "body"): "request/email must NOT have …". */
const REQUEST = 'request'

/** Calls that take a password or a token: the low per-IP limit of REST's sign-in routes applies. */
const CREDENTIAL_CALL = { credentialCall: true }

interface Caller {
  principal: Principal | undefined
  origin: RequestOrigin
}

/**
 * helix.auth.v1.AuthService on the identity layer: each method is the twin of a REST /auth route and
 * calls the same core function, with the same input checks, access rule, per-IP limits, audit entries
 * and error messages.
 */
export function authService(identity: Identity, context: GrpcContext): UntypedServiceImplementation {
  const { deps } = identity

  /** A unary method: the access check (and the REST path for auth.public_routes), then the handler. */
  function method<Req>(
    name: string,
    access: GrpcAccess,
    options: { restPath?: string | ((request: Req) => string); credentialCall?: boolean },
    handle: (request: Req, caller: Caller) => Promise<unknown>,
  ) {
    return unary<Req, unknown>(context, `${SERVICE}/${name}`, async (call: ServerUnaryCall<Req, unknown>) => {
      const { restPath, credentialCall } = options
      const principal = await context.auth.authorize(call, access, {
        ...(restPath ? { restPath: typeof restPath === 'string' ? restPath : restPath(call.request) } : {}),
        ...(credentialCall ? { credentialCall } : {}),
      })
      // The caller's address as REST's request.ip (server.trust_proxy), for audit entries and sessions.
      const origin = {
        ip: context.auth.clientAddress(call),
        userAgent: metadataValue(call.metadata, 'user-agent') ?? null,
      }
      return handle(call.request, { principal, origin })
    })
  }

  return {
    Register: method<{ email?: string; password?: string; display_name?: string }>(
      'Register',
      'public',
      CREDENTIAL_CALL,
      async (request, { origin }) => {
        const input = checkInput(
          RegisterInput,
          {
            email: given(request.email),
            password: given(request.password),
            display_name: request.display_name,
          },
          REQUEST,
        )
        const registration = await register(
          deps,
          { email: input.email, password: input.password, displayName: input.display_name || null },
          origin,
        )
        return registerMessage(registration)
      },
    ),

    Login: method<{ email?: string; password?: string }>(
      'Login',
      'public',
      CREDENTIAL_CALL,
      async (request, { origin }) => {
        const input = checkInput(
          LoginInput,
          { email: given(request.email), password: given(request.password) },
          REQUEST,
        )
        return sessions.login(deps, input, origin)
      },
    ),

    Logout: method<{ refresh_token?: string }>(
      'Logout',
      'signed-in',
      { restPath: '/auth/logout' },
      async (request, { principal, origin }) => {
        const input = checkInput(LogoutInput, { refresh_token: request.refresh_token }, REQUEST)
        return sessions.logout(deps, { ...sessionOf(principal), refreshToken: input.refresh_token }, origin)
      },
    ),

    Refresh: method<{ refresh_token?: string }>(
      'Refresh',
      'public',
      CREDENTIAL_CALL,
      async (request, { origin }) => {
        const input = checkInput(RefreshInput, { refresh_token: given(request.refresh_token) }, REQUEST)
        return sessions.refresh(deps, input.refresh_token, origin)
      },
    ),

    VerifyEmail: method<{ token?: string }>(
      'VerifyEmail',
      'public',
      CREDENTIAL_CALL,
      async (request, { origin }) => {
        const input = checkInput(VerifyInput, { token: given(request.token) }, REQUEST)
        return accounts.verifyEmail(deps, input.token, origin)
      },
    ),

    RequestPasswordReset: method<{ email?: string }>(
      'RequestPasswordReset',
      'public',
      CREDENTIAL_CALL,
      async (request, { origin }) => {
        const input = checkInput(ForgotInput, { email: given(request.email) }, REQUEST)
        return requestPasswordReset(deps, input.email, origin)
      },
    ),

    ResetPassword: method<{ token?: string; password?: string }>(
      'ResetPassword',
      'public',
      CREDENTIAL_CALL,
      async (request, { origin }) => {
        const input = checkInput(
          ResetInput,
          { token: given(request.token), password: given(request.password) },
          REQUEST,
        )
        return accounts.resetPassword(deps, input, origin)
      },
    ),

    GetProfile: method<Record<string, never>>(
      'GetProfile',
      'signed-in',
      { restPath: '/auth/me' },
      async (_request, { principal }) =>
        userMessage(await accounts.getAccount(deps, accountUserId(principal))),
    ),

    UpdateProfile: method<{ email?: string; display_name?: string }>(
      'UpdateProfile',
      'signed-in',
      { restPath: '/auth/me' },
      async (request, { principal, origin }) => {
        const input = checkInput(
          UpdateProfileInput,
          { email: request.email, display_name: request.display_name },
          REQUEST,
        )
        const userId = accountUserId(principal)
        // gRPC has no null: an empty display name removes it, as null does in REST.
        const updated = await accounts.updateAccount(
          deps,
          userId,
          {
            ...(input.email !== undefined ? { email: input.email } : {}),
            ...(input.display_name !== undefined ? { displayName: input.display_name || null } : {}),
          },
          origin,
        )
        return userMessage(updated)
      },
    ),

    ApiKeys: method<ApiKeysRequestMessage>(
      'ApiKeys',
      'signed-in',
      { restPath: restPathOfKeyAction },
      async (request, { principal, origin }) => {
        const actor = keyActorOf(principal)
        switch (request.action) {
          case 'create': {
            const input = checkInput(
              CreateKeyInput,
              createKeyInput(request.create ?? {}),
              `${REQUEST}/create`,
            )
            const created = await keys.createKey(deps, actor, newKeyRequest(input), origin)
            return { created: apiKeySecretMessage(created) }
          }
          case 'list': {
            const list = request.list ?? {}
            const found = await keys.listKeys(
              deps,
              actor,
              listKeysFilter(actor, { all: list.all, include_revoked: list.include_revoked }),
            )
            return { listed: { api_keys: found.map(apiKeyMessage) } }
          }
          case 'rotate': {
            const rotate = request.rotate ?? {}
            const { id } = checkInput(KeyIdInput, { id: given(rotate.id) }, `${REQUEST}/rotate`)
            const { grace_seconds } = checkInput(
              RotateInput,
              { grace_seconds: rotate.grace_seconds },
              `${REQUEST}/rotate`,
            )
            const rotated = await keys.rotateKey(
              deps,
              actor,
              id,
              grace_seconds === undefined ? {} : { graceSeconds: grace_seconds },
              origin,
            )
            return { rotated: apiKeySecretMessage(rotated) }
          }
          case 'revoke': {
            const { id } = checkInput(KeyIdInput, { id: given(request.revoke?.id) }, `${REQUEST}/revoke`)
            return { revoked: apiKeyMessage(await keys.revokeKey(deps, actor, id, origin)) }
          }
          default:
            throw new UserError(
              'INVALID_INPUT',
              `${REQUEST} must set one action: create, list, rotate or revoke`,
              {
                hint: 'Set exactly one of the fields create, list, rotate and revoke.',
              },
            )
        }
      },
    ),
  }
}

/** The REST path of a key action, matched against auth.public_routes as the REST route's path is. */
function restPathOfKeyAction(request: ApiKeysRequestMessage): string {
  if (request.action === 'rotate') return `/auth/apikeys/${request.rotate?.id ?? ''}/rotate`
  if (request.action === 'revoke') return `/auth/apikeys/${request.revoke?.id ?? ''}`
  return '/auth/apikeys'
}
