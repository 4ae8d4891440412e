import type { FastifyInstance } from 'fastify'
import type { HelixMetrics } from '../metrics.js'
import { globalPlugin } from './global-plugin.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: HelixMetrics
  }
}

/** Counts every answered request and times it, labelled by route pattern (never the raw URL). */
export const metricsPlugin = globalPlugin(
  'helix-metrics',
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
)
