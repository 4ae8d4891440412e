import { type Client, type Metadata, type ServiceError, status } from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import { Failure, type HelixError, UserError } from '../../shared/errors.js'
import type { StreamAnswer } from '../grpc-answer.js'
import { unreachableHint } from './preflight.js'

// A server that does not answer one call in this time will not be benchmarked meaningfully.
const PROBE_TIMEOUT_MS = 15_000

// biome-ignore lint/suspicious/noExplicitAny: proto-loader types messages as plain objects
type Method = MethodDefinition<any, any>

/** One unary call of the preflight, with the probe's deadline; `encoded` requests skip the serializer. */
export function probeUnary<Res>(
  client: Client,
  method: Method,
  request: unknown,
  metadata: Metadata,
  encoded = false,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest<unknown, Res>(
      method.path,
      encoded ? (message) => message as Buffer : method.requestSerialize,
      method.responseDeserialize,
      request,
      metadata,
      { deadline: Date.now() + PROBE_TIMEOUT_MS },
      (err, response) => (err ? reject(err) : resolve(response as Res)),
    )
  })
}

/** One message over ModelStreamInfer: its answer, once the server has ended the stream cleanly. */
export function probeStream(
  client: Client,
  method: Method,
  request: Buffer,
  metadata: Metadata,
): Promise<StreamAnswer> {
  return new Promise((resolve, reject) => {
    const call = client.makeBidiStreamRequest<Buffer, StreamAnswer>(
      method.path,
      (message) => message,
      method.responseDeserialize,
      metadata,
      { deadline: Date.now() + PROBE_TIMEOUT_MS },
    )
    let answer: StreamAnswer | undefined
    call.on('data', (message: StreamAnswer) => {
      answer ??= message
    })
    call.on('error', reject)
    call.on('status', (s: { code: status }) => {
      if (s.code !== status.OK) return
      if (answer) resolve(answer)
      else reject(Object.assign(new Error('the stream ended without an answer'), { code: status.INTERNAL }))
    })
    call.write(request)
    call.end()
  })
}

/** The transport failure grpc-js reports in `details` ("… Last error: Error: connect ECONNREFUSED …"). */
export function lastTransportError(details: string): string {
  const last =
    /Last error: (?:Error: )?([\s\S]*?)(?: \(\d{4}-\d\d-\d\dT[^)]*\))?\.?\s*(?:Resolution note:.*)?$/.exec(
      details,
    )
  const text = (last?.[1] ?? details).trim()
  // OpenSSL's long form ("…:SSL routines:ssl3_get_record:wrong version number:…") reads best by its reason.
  const ssl = /SSL routines:[^:]*:([^:]+):/.exec(text)
  return ssl ? ssl[1] : text.split('\n')[0]
}

/**
 * A preflight call that failed, as one clear error: what to fix for an unreachable server, a bad key,
 * an unknown model, a request the server rejects, or a port that does not speak gRPC (for example
 * the REST port).
 */
export function preflightError(
  err: unknown,
  where: { url: string; tls: boolean; clientCert: boolean },
  notFound: () => UserError,
): HelixError {
  const e = err as Partial<ServiceError>
  const code = e.code ?? status.UNKNOWN
  const detail = `${status[code] ?? code}: ${e.details ?? e.message ?? 'no details'}`
  const url = where.url
  if (code === status.UNAVAILABLE) return unreachable(lastTransportError(e.details ?? ''), where, err)
  if (code === status.DEADLINE_EXCEEDED) {
    return new Failure('BENCH_UNREACHABLE', `${url} did not answer within ${PROBE_TIMEOUT_MS / 1000} s`, {
      hint: 'Check that the server is running and not overloaded, and that --url is its gRPC address.',
      cause: err,
    })
  }
  if (code === status.UNAUTHENTICATED || code === status.PERMISSION_DENIED) {
    return new UserError('BENCH_UNAUTHORIZED', `${url} refused the credentials (${detail})`, {
      hint: 'Pass a valid API key with --key (sent as authorization: Bearer metadata) with the infer and models:read scopes.',
      cause: err,
    })
  }
  if (code === status.NOT_FOUND) return notFound()
  if (code === status.UNIMPLEMENTED) {
    return new UserError(
      'BENCH_NOT_GRPC',
      `${url} does not serve inference.GRPCInferenceService (${detail})`,
      {
        hint: 'Point --url at a KServe v2 gRPC server (helix serve listens for gRPC on the REST port + 1).',
        cause: err,
      },
    )
  }
  if (
    code === status.INVALID_ARGUMENT ||
    code === status.FAILED_PRECONDITION ||
    code === status.OUT_OF_RANGE
  ) {
    return new UserError('BENCH_BAD_REQUEST', `${url} rejected the benchmark request (${detail})`, {
      hint: 'Check --input and --shape against the model metadata.',
      cause: err,
    })
  }
  return new Failure('BENCH_SERVER_ERROR', `${url} failed the benchmark request (${detail})`, {
    hint: 'Check the server logs; the server must answer one request before it can be benchmarked.',
    cause: err,
  })
}

function unreachable(
  reason: string,
  where: { url: string; tls: boolean; clientCert: boolean },
  cause: unknown,
): HelixError {
  const { url } = where
  if (/^Protocol error$/i.test(reason) || /wrong version number|packet length too long/i.test(reason)) {
    return new UserError('BENCH_NOT_GRPC', `${url} did not answer as a gRPC server (${reason})`, {
      hint: where.tls
        ? 'The server does not speak TLS there: use grpc://host:port, or check that --url is the gRPC port (the REST port + 1 unless server.grpc.port says otherwise).'
        : 'Check that --url is the gRPC port, not the REST one (gRPC listens on the REST port + 1 unless server.grpc.port says otherwise); a TLS server needs grpcs://host:port.',
      cause,
    })
  }
  const tlsKind = tlsFailureKind(reason)
  const hint =
    where.tls && tlsKind
      ? unreachableHint(tlsKind, { origin: `https://${url}`, tls: where.clientCert ? { cert: 'given' } : {} })
      : where.tls && !where.clientCert && /socket closed|ECONNRESET|Connection dropped/i.test(reason)
        ? 'The server closed the connection: if it requires client certificates (helix serve --mtls), pass --client-cert and --client-key.'
        : !where.tls && /^(Failed to connect|Connection dropped)$/i.test(reason)
          ? // The port is open (not ECONNREFUSED) but the HTTP/2 connection never came up: a TLS server.
            'The server took the connection but not plaintext gRPC: if it uses TLS (helix serve --tls), use grpcs://host:port.'
          : 'Check --url (gRPC listens on the REST port + 1 unless server.grpc.port says otherwise; data/daemon.json records it) and that the server is running (for example `helix serve`).'
  return new Failure('BENCH_UNREACHABLE', `Cannot reach ${url}: ${reason}`, { hint, cause })
}

/** Node's TLS failure messages as the codes unreachableHint reads. */
function tlsFailureKind(reason: string): string | undefined {
  if (
    /alert certificate required|alert handshake failure|alert bad certificate|alert unknown ca/i.test(reason)
  )
    return `ALERT_${reason
      .replace(/^.*alert /i, '')
      .toUpperCase()
      .replace(/\s+/g, '_')}`
  if (/self[- ]signed|unable to (get|verify)|certificate|altnames/i.test(reason)) return 'CERT_UNTRUSTED'
  return undefined
}
