import type {} from '@fastify/websocket'
import type { FastifyInstance } from 'fastify'
import type { ModelService } from '../../core/infer/types.js'
import { REALTIME_PATH } from '../../shared/realtime-protocol.js'
import type { SocketAuth } from '../auth/socket-auth.js'
import { RealtimeConnection } from '../realtime/connection.js'
import { PrincipalSockets } from '../realtime/principal-sockets.js'
import { ResumeStore } from '../realtime/resume-store.js'
import type { RealtimeSettings } from '../realtime/settings.js'

export interface RealtimeRouteOptions {
  service: ModelService
  auth: SocketAuth
  settings: RealtimeSettings
}

/**
 * GET /v1/realtime: WebSocket streaming (docs/realtime.md). The upgrade itself is public (per-IP
 * limits apply to it like any request); the socket authenticates with its first frame.
 */
export async function realtimeRoutes(app: FastifyInstance, options: RealtimeRouteOptions) {
  const { settings } = options
  const store = new ResumeStore({
    graceMs: settings.resumeGraceMs,
    maxDetachedPerOwner: settings.maxSocketsPerPrincipal,
  })
  const context = {
    settings,
    auth: options.auth,
    store,
    sockets: new PrincipalSockets(settings.maxSocketsPerPrincipal),
    service: options.service,
    metrics: app.metrics,
    log: app.log,
  }
  app.addHook('onClose', async () => store.close())
  app.get(REALTIME_PATH, { websocket: true, config: { access: 'public' } }, (socket, request) => {
    new RealtimeConnection(socket, { ip: request.ip, headers: request.headers }, context)
  })
}
