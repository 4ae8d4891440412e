import type { Context } from '@opentelemetry/api'

/** The span context of each traced call (helix.yaml tracing.enabled), keyed by the grpc-js call object. */
const traceContexts = new WeakMap<object, Context>()

export function setCallTraceContext(call: object, context: Context): void {
  traceContexts.set(call, context)
}

/** The call's span context while tracing is on, for the auth span and the inference core. */
export function callTraceContext(call: object): Context | undefined {
  return traceContexts.get(call)
}
