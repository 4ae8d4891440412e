import type { UntypedServiceImplementation } from '@grpc/grpc-js'
import type { ModelService } from '../core/infer/types.js'
import { isHelixError, UserError } from '../shared/errors.js'
import { type GrpcContext, serverStream, unary } from './calls.js'

type ServingStatus = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN'

/** The service names that stand for the whole server. */
const SERVER_NAMES = new Set(['', 'inference.GRPCInferenceService'])

/** How often Watch looks for a change (the core has no events for readiness). */
const WATCH_INTERVAL_MS = 500

/**
 * grpc.health.v1.Health, public so Kubernetes gRPC probes and grpc_health_probe work without
 * credentials: service "" (or the inference service) is the server's readiness, a model's name that
 * model's. Check answers NOT_FOUND for a name it does not know, Watch SERVICE_UNKNOWN (as the protocol
 * says); a draining server reports NOT_SERVING.
 */
export function healthService(service: ModelService, context: GrpcContext): UntypedServiceImplementation {
  const statusOf = (name: string): ServingStatus => {
    if (context.streams.isDraining) return 'NOT_SERVING'
    if (SERVER_NAMES.has(name)) return service.isReady() ? 'SERVING' : 'NOT_SERVING'
    try {
      return service.modelReady(name) ? 'SERVING' : 'NOT_SERVING'
    } catch (err) {
      if (isHelixError(err) && err.kind === 'not_found') return 'SERVICE_UNKNOWN'
      throw err
    }
  }
  return {
    Check: unary<{ service?: string }, unknown>(context, '/grpc.health.v1.Health/Check', async (call) => {
      const name = call.request.service ?? ''
      const status = statusOf(name)
      if (status === 'SERVICE_UNKNOWN') throw new UserError('NOT_FOUND', `Unknown service '${name}'.`)
      return { status }
    }),
    Watch: serverStream<{ service?: string }, unknown>(
      context,
      '/grpc.health.v1.Health/Watch',
      async (call, drained) => {
        const name = call.request.service ?? ''
        let last: ServingStatus | undefined
        const send = () => {
          const status = statusOf(name)
          if (status !== last) {
            last = status
            call.write({ status })
          }
        }
        send()
        await new Promise<void>((resolve) => {
          const timer = setInterval(send, WATCH_INTERVAL_MS)
          const stop = () => {
            clearInterval(timer)
            resolve()
          }
          call.once('cancelled', stop)
          void drained.then(() => {
            send()
            stop()
          })
        })
      },
    ),
  }
}
