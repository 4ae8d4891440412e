import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { HelixMetrics } from '../../core/metrics.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: HelixMetrics
  }
}

/** Counts every answered request and times it, labelled by route pattern (never the raw URL). */
export const metricsPlugin = fp(
  async (app: FastifyInstance, options: { metrics: HelixMetrics }) => {
    const { metrics } = options
    app.decorate('metrics', metrics)
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched'
      metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) })
      metrics.requestDuration.observe(
        { method: request.method, route, status_code: String(reply.statusCode) },
        reply.elapsedTime / 1000,
      )
    })
  },
  { name: 'helix-metrics', fastify: '5.x' },
)
