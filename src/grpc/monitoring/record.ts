import type { status } from '@grpc/grpc-js'
import type { Principal } from '../../core/identity/principal.js'
import { type CallAuth, type CallInfo, metadataValue, peerAddress } from '../call-auth.js'
import { httpEquivalent, requestIdOf } from '../calls.js'

/** A monitoring call in the request log and the key's usage counters, as every other call is. */
export function recordCall(
  auth: CallAuth,
  call: CallInfo,
  principal: Principal | undefined,
  method: string,
  code: status,
  started: number,
): void {
  const userAgent = metadataValue(call.metadata, 'user-agent')
  auth.record({
    principal,
    method,
    status: httpEquivalent(code),
    durationMs: performance.now() - started,
    items: 0,
    ip: peerAddress(call.getPeer()),
    ...(userAgent ? { userAgent } : {}),
    requestId: requestIdOf(call.metadata),
  })
}
