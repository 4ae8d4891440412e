// Route schemas carry OpenAPI tags and summaries (types from @fastify/swagger).
import type {} from '@fastify/swagger'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import * as accounts from '../../core/identity/accounts.js'
import { accountUserId, sessionOf } from '../../core/identity/caller.js'
import type { IdentityDeps, RequestOrigin } from '../../core/identity/identity-deps.js'
import { register, requestPasswordReset } from '../../core/identity/self-service.js'
import * as sessions from '../../core/identity/sessions.js'
import { ErrorBody } from '../schemas/v2.js'
import {
  Accepted,
  ChangePasswordBody,
  Done,
  ForgotBody,
  Jwks,
  LoginBody,
  LogoutBody,
  RefreshBody,
  RegisterBody,
  RegisterPending,
  RegisterResponse,
  ResetBody,
  TokenResponseSchema,
  VerifyBody,
  VerifyQuery,
} from './auth-schemas.js'

export function originOf(request: FastifyRequest): RequestOrigin {
  return { ip: request.ip, userAgent: request.headers['user-agent'] ?? null }
}

/** The signed-in user's id; API keys without an owner cannot use account routes. */
export function userIdOf(request: FastifyRequest): string {
  return accountUserId(request.principal)
}

const errors = { '4xx': ErrorBody, '5xx': ErrorBody }
const tags = ['auth']

/** POST /auth/register|login|refresh|logout, password change/forgot/reset, e-mail verification, JWKS. */
export async function authRoutes(instance: FastifyInstance, options: { deps: IdentityDeps }) {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>()
  const { deps } = options

  app.post(
    '/auth/register',
    {
      config: { access: 'public' },
      schema: {
        tags,
        summary: 'Create an account',
        description:
          'With mail.smtp_url set, a new address and a taken one get the same 202 answer and a mail (a verification link, or a note to the owner); without it, 201 with the account or 409 USER_EXISTS.',
        body: RegisterBody,
        response: { 201: RegisterResponse, 202: RegisterPending, ...errors },
      },
    },
    async (request, reply) => {
      const { email, password, display_name } = request.body
      const registration = await register(
        deps,
        { email, password, displayName: display_name ?? null },
        originOf(request),
      )
      reply.code(registration.status === 'created' ? 201 : 202)
      return registration
    },
  )

  app.post(
    '/auth/login',
    {
      config: { access: 'public' },
      schema: {
        tags,
        summary: 'Sign in with e-mail and password',
        body: LoginBody,
        response: { 200: TokenResponseSchema, ...errors },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store')
      return sessions.login(deps, request.body, originOf(request))
    },
  )

  app.post(
    '/auth/refresh',
    {
      config: { access: 'public' },
      schema: {
        tags,
        summary: 'Exchange a refresh token for new tokens (rotation; reuse revokes the session)',
        body: RefreshBody,
        response: { 200: TokenResponseSchema, ...errors },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store')
      return sessions.refresh(deps, request.body.refresh_token, originOf(request))
    },
  )

  app.post(
    '/auth/logout',
    {
      config: { access: 'signed-in' },
      schema: { tags, summary: 'End this session', body: LogoutBody, response: { 200: Done, ...errors } },
    },
    async (request) =>
      sessions.logout(
        deps,
        { ...sessionOf(request.principal), refreshToken: request.body?.refresh_token },
        originOf(request),
      ),
  )

  app.post(
    '/auth/password/change',
    {
      config: { access: 'signed-in' },
      schema: {
        tags,
        summary: 'Change the password (ends every session)',
        body: ChangePasswordBody,
        response: { 200: Done, ...errors },
      },
    },
    async (request) =>
      accounts.changePassword(
        deps,
        userIdOf(request),
        { current: request.body.current_password, next: request.body.new_password },
        originOf(request),
      ),
  )

  app.post(
    '/auth/password/forgot',
    {
      config: { access: 'public' },
      schema: {
        tags,
        summary: 'Mail a password-reset token',
        body: ForgotBody,
        response: { 202: Accepted, ...errors },
      },
    },
    async (request, reply) => {
      // Answered before any look-up (requestPasswordReset), so known and unknown addresses look alike.
      reply.code(202)
      return requestPasswordReset(deps, request.body.email, originOf(request))
    },
  )

  app.post(
    '/auth/password/reset',
    {
      config: { access: 'public' },
      schema: {
        tags,
        summary: 'Set a new password with a reset token (single use)',
        body: ResetBody,
        response: { 200: Done, ...errors },
      },
    },
    async (request) => accounts.resetPassword(deps, request.body, originOf(request)),
  )

  app.post(
    '/auth/email/verify',
    {
      config: { access: 'public' },
      schema: {
        tags,
        summary: 'Confirm an e-mail address (single use)',
        body: VerifyBody,
        response: { 200: Done, ...errors },
      },
    },
    async (request) => accounts.verifyEmail(deps, request.body.token, originOf(request)),
  )

  app.get(
    '/auth/email/verify',
    {
      config: { access: 'public' },
      schema: {
        tags,
        summary: 'Confirm an e-mail address from the mailed link',
        querystring: VerifyQuery,
        response: { 200: Done, ...errors },
      },
    },
    async (request) => accounts.verifyEmail(deps, request.query.token, originOf(request)),
  )

  app.get(
    '/.well-known/jwks.json',
    {
      config: { access: 'public' },
      schema: { tags, summary: 'Public keys that verify access tokens', response: { 200: Jwks } },
    },
    async (_request, reply) => {
      reply.header('cache-control', 'public, max-age=300')
      return deps.keys?.jwks ?? { keys: [] }
    },
  )
}
