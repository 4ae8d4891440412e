import { rowsOf } from '../../core/identity/access.js'
import type { InferFrame } from '../../shared/realtime-protocol.js'
import { decodeInferRequest } from '../kserve/infer-request.js'
import { encodeInferResponse } from '../kserve/infer-response.js'
import type { InferRequestBody } from '../schemas/v2.js'
import { callerKey, cancelledError, type RequestContext, type RequestOutcome } from './request-context.js'

/** Batch rows of an infer frame, for the items quota (as REST counts them). */
export function inferItems(frame: InferFrame): number {
  return rowsOf(frame.inputs.map((input) => input.shape))
}

/**
 * An infer frame: KServe v2 JSON tensors in, one result frame out with the KServe response's fields
 * (model_name, model_version, outputs with JSON data). Decoded and encoded by the REST codec.
 */
export async function runInfer(frame: InferFrame, context: RequestContext): Promise<RequestOutcome> {
  const { service, metrics, session, stream } = context
  // decodeInferRequest checks every datatype and shape itself, as it does for REST bodies.
  const decoded = decodeInferRequest({ inputs: frame.inputs, outputs: frame.outputs } as InferRequestBody)
  const key = callerKey(context.principal)
  let result: Awaited<ReturnType<typeof service.infer>>
  try {
    result = await service.infer({
      model: frame.model,
      ...(frame.version !== undefined ? { version: frame.version } : {}),
      inputs: decoded.inputs,
      ...(decoded.outputs ? { outputs: decoded.outputs } : {}),
      ...(key ? { routingKey: key } : {}),
      headers: context.headers,
      signal: stream.cancel,
    })
  } catch (err) {
    metrics.inferenceFailed('websocket', frame.model, frame.version, err)
    throw stream.cancel.aborted ? cancelledError(stream) : err
  }
  if (stream.cancel.aborted) throw cancelledError(stream)
  metrics.inferenceDone('websocket', result)
  // The KServe response's own id would clash with the frame's: the frame id names the request.
  const { payload } = encodeInferResponse({ ...result, id: undefined }, () => false)
  session.emit(stream, 'result', (payload as string).slice(1, -1))
  return { model: result.modelName, version: result.modelVersion, items: inferItems(frame) }
}
