// Route schemas carry OpenAPI tags and summaries (types from @fastify/swagger).
import type {} from '@fastify/swagger'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import * as accounts from '../../core/identity/accounts.js'
import { invalidCredentials } from '../../core/identity/auth-errors.js'
import type { IdentityDeps } from '../../core/identity/identity-deps.js'
import { verifyPassword } from '../../core/identity/password-hash.js'
import * as repos from '../../state/db/repositories/index.js'
import { ErrorBody } from '../schemas/v2.js'
import { originOf, userIdOf } from './auth.js'
import { DeleteMeBody, Done, PublicUserSchema, UpdateMeBody } from './auth-schemas.js'

const errors = { '4xx': ErrorBody, '5xx': ErrorBody }
const tags = ['account']

/** GET/PATCH/DELETE /auth/me and GET /auth/me/export (GDPR access and erasure). */
export async function authMeRoutes(instance: FastifyInstance, options: { deps: IdentityDeps }) {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>()
  const { deps } = options

  app.get(
    '/auth/me',
    {
      config: { access: 'signed-in' },
      schema: { tags, summary: 'Your profile', response: { 200: PublicUserSchema, ...errors } },
    },
    async (request) => accounts.getAccount(deps, userIdOf(request)),
  )

  app.patch(
    '/auth/me',
    {
      config: { access: 'signed-in' },
      schema: {
        tags,
        summary: 'Change your e-mail or display name',
        body: UpdateMeBody,
        response: { 200: PublicUserSchema, ...errors },
      },
    },
    async (request) => {
      const { email, display_name } = request.body
      return accounts.updateAccount(
        deps,
        userIdOf(request),
        {
          ...(email !== undefined ? { email } : {}),
          ...(display_name !== undefined ? { displayName: display_name } : {}),
        },
        originOf(request),
      )
    },
  )

  app.get(
    '/auth/me/export',
    {
      config: { access: 'signed-in' },
      schema: {
        tags,
        summary: 'Everything held about you (GDPR export)',
        response: { 200: Done, ...errors },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', 'no-store')
      reply.header('content-disposition', 'attachment; filename="helix-export.json"')
      return accounts.exportAccount(deps, userIdOf(request))
    },
  )

  app.delete(
    '/auth/me',
    {
      config: { access: 'signed-in' },
      schema: {
        tags,
        summary: 'Erase your account and personal data (GDPR); needs your password',
        body: DeleteMeBody,
        response: { 200: Done, ...errors },
      },
    },
    async (request) => {
      const userId = userIdOf(request)
      const row = await repos.users.findUserById(deps.db, userId)
      // Re-authentication for an irreversible action (ASVS V6.2.3 asks it for password changes; same reason).
      if (row?.password_hash && !(await verifyPassword(row.password_hash, request.body?.password ?? '')))
        throw invalidCredentials()
      return accounts.eraseAccount(deps, userId, {
        ...originOf(request),
        actorUserId: userId,
        actor: `user:${userId}`,
      })
    },
  )
}
