import type { FastifyInstance } from 'fastify'

/**
 * GET /metrics in the Prometheus text format. With auth on it needs the `metrics` scope (the series
 * name API key ids); server.metrics_port serves the same text on loopback without credentials.
 */
export async function opsRoutes(app: FastifyInstance) {
  app.get('/metrics', { config: { access: { scope: 'metrics' } } }, async (_request, reply) => {
    reply.type(app.metrics.registry.contentType)
    return app.metrics.registry.metrics()
  })
}
