import type { UntypedServiceImplementation } from '@grpc/grpc-js'
import type { Identity } from '../../core/identity/identity.js'
import type { ModelService } from '../../core/infer/types.js'
import type { HelixMetrics } from '../../core/metrics.js'
import type { GrpcContext } from '../calls.js'

/** What the monitoring service reads. */
export interface MonitoringDeps {
  service: ModelService
  identity?: Identity
  metrics?: HelixMetrics
}

/** helix.monitoring.v1.MonitoringService over what the daemon knows. */
export function monitoringService(
  _deps: MonitoringDeps,
  _context: GrpcContext,
): UntypedServiceImplementation {
  return {}
}
