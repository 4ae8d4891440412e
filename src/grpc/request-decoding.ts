import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js'
import { UserError } from '../shared/errors.js'

/**
 * What a method's handler receives instead of a request message when the bytes a client sent do not
 * decode as one. grpc-js answers a deserializer that throws with INTERNAL ("Error deserializing
 * request"), a server error for what is the client's mistake; the handler wrappers of calls.ts answer
 * this with INVALID_ARGUMENT instead, as REST answers a body that is not JSON with 400.
 */
export class MalformedRequest {
  constructor(
    /** The request message type, e.g. ModelInferRequest. */
    readonly typeName: string,
    /** protobufjs's reason when it says where the bytes broke (offset, wire type), else empty. */
    readonly reason: string,
  ) {}
}

/** protobufjs reader errors name the offset or wire type at fault; anything else says nothing useful. */
const READER_ERROR = /^(index out of range|invalid wire type|illegal tag|invalid varint encoding)/i

function malformed(typeName: string, err: unknown): MalformedRequest {
  const message = err instanceof Error ? err.message : ''
  return new MalformedRequest(typeName, READER_ERROR.test(message) ? message : '')
}

/**
 * The service's methods with deserializers that never throw: a request that does not decode becomes a
 * MalformedRequest for the handler to refuse (refuseMalformed).
 */
export function tolerantDecoding(service: ServiceDefinition): ServiceDefinition {
  const out: Record<string, MethodDefinition<unknown, unknown>> = {}
  for (const [name, method] of Object.entries(service)) {
    const typeName =
      (method as { requestType?: { type?: { name?: string } } }).requestType?.type?.name ?? `${name} request`
    const decode = method.requestDeserialize
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return decode(bytes)
        } catch (err) {
          return malformed(typeName, err)
        }
      },
    }
  }
  return out as ServiceDefinition
}

/** Throws INVALID_INPUT (INVALID_ARGUMENT) for a request that did not decode; returns any other as it is. */
export function refuseMalformed<T>(request: T): T {
  if (request instanceof MalformedRequest) {
    throw new UserError(
      'INVALID_INPUT',
      `The request is not a valid ${request.typeName} protobuf message${request.reason ? ` (${request.reason})` : ''}.`,
    )
  }
  return request
}
