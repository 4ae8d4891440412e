import type { UntypedServiceImplementation } from '@grpc/grpc-js'
import type { Identity } from '../../core/identity/identity.js'
import type { GrpcContext } from '../calls.js'

/** helix.auth.v1.AuthService on the identity layer (the REST /auth routes' twin). */
export function authService(_identity: Identity, _context: GrpcContext): UntypedServiceImplementation {
  return {}
}
