import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyInstance } from 'fastify'
import type { ModelIndexEntry, ModelService } from '../../core/infer/types.js'
import { PACKAGE_VERSION } from '../../shared/package-version.js'
import { Live, Ready, ServerMetadata } from '../schemas/v2.js'

/** Extensions of the Open Inference Protocol this server implements (GET /v2). */
export const EXTENSIONS = ['binary_tensor_data', 'model_repository']

/** One model version as the health, index and metrics answers show it. */
export function modelStatus(entry: ModelIndexEntry) {
  return {
    name: entry.name,
    version: entry.version,
    state: entry.state,
    ...(entry.reason ? { reason: entry.reason } : {}),
    ...(entry.executionProvider ? { execution_provider: entry.executionProvider } : {}),
    ...(entry.device ? { device: entry.device } : {}),
    ...(entry.fallbackReason ? { fallback_reason: entry.fallbackReason } : {}),
    ...(entry.queueDepth !== undefined ? { queue_depth: entry.queueDepth } : {}),
    ...(entry.queueCapacity !== undefined ? { queue_capacity: entry.queueCapacity } : {}),
  }
}

/** GET /v2, /v2/health/live, /v2/health/ready. */
export async function healthRoutes(instance: FastifyInstance, options: { service: ModelService }) {
  const app = instance.withTypeProvider<TypeBoxTypeProvider>()
  const { service } = options
  app.get(
    '/v2',
    { config: { access: { scope: 'models:read' } }, schema: { response: { 200: ServerMetadata } } },
    async () => ({
      name: 'helix',
      version: PACKAGE_VERSION,
      extensions: EXTENSIONS,
    }),
  )
  app.get(
    '/v2/health/live',
    { config: { access: { scope: 'models:read' } }, schema: { response: { 200: Live } } },
    async () => ({ live: true }),
  )
  app.get(
    '/v2/health/ready',
    { config: { access: { scope: 'models:read' } }, schema: { response: { 200: Ready, 503: Ready } } },
    async (_request, reply) => {
      const { ready, reason } = service.readiness()
      const models = service.index().map(modelStatus)
      reply.code(ready ? 200 : 503)
      return { ready, ...(reason ? { reason } : {}), models }
    },
  )
}
