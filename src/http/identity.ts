import cors from '@fastify/cors'
import swagger from '@fastify/swagger'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Identity } from '../core/identity/identity.js'
import { rateLimitGuard } from '../core/limits/guard.js'
import { socketAuth } from './auth/socket-auth.js'
import { type HttpAuth, identityHooks } from './plugins/auth.js'
import { httpRateLimits } from './plugins/rate-limit.js'
import { apiKeyRoutes } from './routes/apikeys.js'
import { authRoutes } from './routes/auth.js'
import { authMeRoutes } from './routes/auth-me.js'
import { docsRoutes } from './routes/docs.js'

/** Version shown in the OpenAPI document. */
const API_VERSION = '2'

/**
 * The REST face of the identity layer, passed as buildApp's `authenticate`: the auth hook plus the
 * /auth, /auth/apikeys, /docs and /openapi.json routes, CORS and the OpenAPI document.
 */
export function httpAuthentication(identity: Identity): HttpAuth {
  const { deps, limiter, recorder } = identity
  const { config } = deps
  const hooks = identityHooks(deps, httpRateLimits(rateLimitGuard(limiter, config)), recorder)
  const routes = fp(
    async (app: FastifyInstance) => {
      // Closed by default: with no configured origins no CORS headers are sent at all.
      await app.register(cors, {
        origin: config.auth.cors_origins.length > 0 ? config.auth.cors_origins : false,
        methods: ['GET', 'POST', 'PATCH', 'DELETE'],
        allowedHeaders: ['authorization', 'content-type', 'x-request-id', 'inference-header-content-length'],
        exposedHeaders: [
          'ratelimit',
          'ratelimit-policy',
          'retry-after',
          'x-request-id',
          'inference-header-content-length',
        ],
        maxAge: 600,
      })
      await app.register(swagger, {
        openapi: {
          openapi: '3.1.0',
          info: {
            title: 'Helix',
            version: API_VERSION,
            description: 'KServe v2, OpenAI-compatible and account APIs of a Helix daemon.',
          },
          components: {
            securitySchemes: {
              bearer: {
                type: 'http',
                scheme: 'bearer',
                description: 'An API key (hx_…) or an access token.',
              },
            },
          },
          security: [{ bearer: [] }],
        },
      })
      app.addHook('preHandler', hooks.preHandler)
      app.addHook('onResponse', hooks.onResponse)
      await app.register(authRoutes, { deps })
      await app.register(authMeRoutes, { deps })
      await app.register(apiKeyRoutes, { deps })
      await app.register(docsRoutes, { title: 'Helix' })
    },
    { name: 'helix-identity', fastify: '5.x' },
  )
  return { authenticate: hooks.authenticate, routes, socket: socketAuth(identity) }
}
