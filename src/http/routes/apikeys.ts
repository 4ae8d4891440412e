// Route schemas carry OpenAPI tags and summaries (types from @fastify/swagger).
import type {} from '@fastify/swagger'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import * as keys from '../../core/identity/api-keys.js'
import { keyActorOf as keyActorOfPrincipal } from '../../core/identity/caller.js'
import type { IdentityDeps } from '../../core/identity/identity-deps.js'
import { listKeysFilter, newKeyRequest } from '../../core/identity/key-requests.js'
import { ErrorBody } from '../schemas/v2.js'
import { originOf } from './auth.js'
import {
  ApiKeyInfoSchema,
  CreatedKeySchema,
  CreateKeyBody,
  KeyIdParams,
  ListKeysQuery,
  RotateBody,
  UsageQuery,
  UsageSchema,
} from './auth-schemas.js'

const errors = { '4xx': ErrorBody, '5xx': ErrorBody }
const tags = ['api keys']

/** The caller as a key manager: admins manage every key, others only their own. */
export function keyActorOf(request: FastifyRequest): keys.KeyActor {
  return keyActorOfPrincipal(request.principal)
}

/** /auth/apikeys: create (secret shown once), list, rotate with grace, revoke, usage. */
export async function apiKeyRoutes(instance: FastifyInstance, options: { deps: IdentityDeps }) {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>()
  const { deps } = options

  app.post(
    '/auth/apikeys',
    {
      config: { access: 'signed-in' },
      schema: {
        tags,
        summary: 'Create an API key (the secret is in this answer only)',
        body: CreateKeyBody,
        response: { 201: CreatedKeySchema, ...errors },
      },
    },
    async (request, reply) => {
      const created = await keys.createKey(
        deps,
        keyActorOf(request),
        newKeyRequest(request.body),
        originOf(request),
      )
      reply.code(201).header('cache-control', 'no-store')
      return created
    },
  )

  app.get(
    '/auth/apikeys',
    {
      config: { access: 'signed-in' },
      schema: {
        tags,
        summary: 'Your API keys (prefix and last 4 only)',
        querystring: ListKeysQuery,
        response: { 200: Type.Array(ApiKeyInfoSchema), ...errors },
      },
    },
    async (request) => {
      const actor = keyActorOf(request)
      return keys.listKeys(deps, actor, listKeysFilter(actor, request.query))
    },
  )

  app.post(
    '/auth/apikeys/:id/rotate',
    {
      config: { access: 'signed-in' },
      schema: {
        tags,
        summary: 'New secret for the same key; the old one works for the grace period',
        params: KeyIdParams,
        body: RotateBody,
        response: { 200: CreatedKeySchema, ...errors },
      },
    },
    async (request, reply) => {
      const grace = request.body?.grace_seconds
      reply.header('cache-control', 'no-store')
      return keys.rotateKey(
        deps,
        keyActorOf(request),
        request.params.id,
        grace === undefined ? {} : { graceSeconds: grace },
        originOf(request),
      )
    },
  )

  app.delete(
    '/auth/apikeys/:id',
    {
      config: { access: 'signed-in' },
      schema: {
        tags,
        summary: 'Revoke a key at once',
        params: KeyIdParams,
        response: { 200: ApiKeyInfoSchema, ...errors },
      },
    },
    async (request) => keys.revokeKey(deps, keyActorOf(request), request.params.id, originOf(request)),
  )

  app.get(
    '/auth/apikeys/:id/usage',
    {
      config: { access: 'signed-in' },
      schema: {
        tags,
        summary: 'Usage counters of a key',
        params: KeyIdParams,
        querystring: UsageQuery,
        response: { 200: UsageSchema, ...errors },
      },
    },
    async (request) =>
      keys.keyUsage(
        deps,
        keyActorOf(request),
        request.params.id,
        request.query.since ? { since: new Date(request.query.since) } : {},
      ),
  )
}
