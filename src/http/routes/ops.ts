import type { FastifyInstance } from 'fastify'

/** GET /metrics in the Prometheus text format. */
export async function opsRoutes(app: FastifyInstance) {
  app.get('/metrics', { config: { access: 'public' } }, async (_request, reply) => {
    reply.type(app.metrics.registry.contentType)
    return app.metrics.registry.metrics()
  })
}
