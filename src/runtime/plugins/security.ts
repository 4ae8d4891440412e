import helmet from '@fastify/helmet'
import type { FastifyInstance } from 'fastify'
import { globalPlugin } from './global-plugin.js'

/** Security headers (helmet's defaults suit a JSON API) and the request id echoed to the client. */
export const securityPlugin = globalPlugin('helix-security', async (app: FastifyInstance) => {
  // HSTS two years, as Mozilla's intermediate profile (REFERENCE.md) asks.
  await app.register(helmet, { global: true, hsts: { maxAge: 63_072_000, includeSubDomains: true } })
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
})
