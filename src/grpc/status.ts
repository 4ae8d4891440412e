import { Metadata, type ServiceError, status } from '@grpc/grpc-js'
import type { ErrorKind } from '../shared/error-codes.js'
import { isHelixError } from '../shared/errors.js'

/**
 * The one table from error kinds to gRPC status codes (the REST face has its own, to HTTP statuses).
 * Typed by ErrorKind, so a new kind cannot be left unmapped.
 */
export const GRPC_STATUS: Readonly<Record<ErrorKind, status>> = {
  invalid_input: status.INVALID_ARGUMENT,
  unauthenticated: status.UNAUTHENTICATED,
  forbidden: status.PERMISSION_DENIED,
  not_found: status.NOT_FOUND,
  conflict: status.ALREADY_EXISTS,
  too_large: status.RESOURCE_EXHAUSTED,
  unsupported_media_type: status.INVALID_ARGUMENT,
  rate_limited: status.RESOURCE_EXHAUSTED,
  overloaded: status.RESOURCE_EXHAUSTED,
  cancelled: status.CANCELLED,
  model_failed: status.INTERNAL,
  internal: status.INTERNAL,
  dependency_failed: status.UNAVAILABLE,
  unavailable: status.UNAVAILABLE,
  timeout: status.DEADLINE_EXCEEDED,
}

/** Status code names for metrics and logs (status[code] of the enum). */
export function statusName(code: status): string {
  return status[code] ?? String(code)
}

/**
 * The most UTF-8 bytes of a status message. grpc-message travels in the trailers, which HTTP/2 peers
 * bound (gRPC C-core refuses metadata beyond 8-16 KiB, Node's HTTP/2 a header list beyond 64 KiB):
 * a message that echoes a megabyte-long model name would break the client's connection instead of
 * telling it what went wrong. Percent-encoding at most triples these bytes.
 */
export const MAX_DETAILS_BYTES = 1024

/** `text` cut to MAX_DETAILS_BYTES of UTF-8 at a character boundary, marked with an ellipsis. */
export function boundedDetails(text: string): string {
  if (Buffer.byteLength(text) <= MAX_DETAILS_BYTES) return text
  let out = ''
  let bytes = 0
  for (const char of text) {
    const size = Buffer.byteLength(char)
    if (bytes + size > MAX_DETAILS_BYTES - 3) break
    out += char
    bytes += size
  }
  return `${out}…`
}

/** Seconds a client should wait after RESOURCE_EXHAUSTED when the core does not say. */
const DEFAULT_RETRY_AFTER_S = 1

/**
 * Anything thrown by a handler, as the status a client sees: the same message as REST, the stable
 * error code in `helix-error-code`, and for refusals that pass with time `retry-after` (seconds) and
 * gRPC's own `grpc-retry-pushback-ms`, which clients with a retry policy honour. Internal errors hide
 * their message; others are bounded (boundedDetails).
 */
export function toServiceError(err: unknown): Partial<ServiceError> & { code: status; details: string } {
  const metadata = new Metadata()
  if (!isHelixError(err)) {
    metadata.set('helix-error-code', 'INTERNAL')
    return { code: status.INTERNAL, details: 'Internal server error.', metadata }
  }
  const code = GRPC_STATUS[err.kind]
  metadata.set('helix-error-code', err.code)
  if (err.kind === 'rate_limited' || err.kind === 'overloaded') {
    const retry = err.details?.retryAfterSeconds
    const seconds = typeof retry === 'number' ? Math.max(1, Math.ceil(retry)) : DEFAULT_RETRY_AFTER_S
    metadata.set('retry-after', String(seconds))
    metadata.set('grpc-retry-pushback-ms', String(seconds * 1000))
  }
  return {
    code,
    details: err.kind === 'internal' ? 'Internal server error.' : boundedDetails(err.message),
    metadata,
  }
}
