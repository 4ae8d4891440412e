import type { TextTask } from '../../core/generate/types.js'
import type { Principal } from '../../core/identity/principal.js'
import type { ModelService, TextTarget } from '../../core/infer/types.js'
import type { HelixMetrics } from '../../core/metrics.js'
import { Failure } from '../../shared/errors.js'
import type { RealtimeSession, RequestStream } from './session.js'

/** What a request frame's runner gets: the core, its session and its stream of frames. */
export interface RequestContext {
  service: ModelService
  metrics: HelixMetrics
  session: RealtimeSession
  stream: RequestStream
  principal: Principal | undefined
  /** The upgrade request's headers (a model's sticky_header is read from them). */
  headers: Record<string, string | string[] | undefined>
}

/** What a finished request reports for the usage record. */
export interface RequestOutcome {
  model: string
  version?: string
  items: number
  tokens?: number
}

/** Fairness key of the generation scheduler and sticky A/B key: the API key, else the user. */
export function callerKey(principal: Principal | undefined): string | undefined {
  return principal?.keyId ?? principal?.userId
}

/** The error a request stopped by cancel (the client's, or the daemon's with a reason) ends with. */
export function cancelledError(stream: RequestStream): Failure {
  return new Failure('CANCELLED', stream.stopReason ?? `Request ${stream.id} was cancelled by the client.`)
}

/** The text engine a frame names; failures before a model took the request count as refused. */
export async function textTarget(
  context: RequestContext,
  frame: { model: string; version?: string },
  task: TextTask,
): Promise<TextTarget> {
  const key = callerKey(context.principal)
  try {
    return await context.service.text({
      model: frame.model,
      ...(frame.version !== undefined ? { version: frame.version } : {}),
      task,
      ...(key ? { routingKey: key } : {}),
      headers: context.headers,
    })
  } catch (err) {
    context.metrics.textRefused('realtime')
    throw err
  }
}
