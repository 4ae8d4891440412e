import { randomUUID } from 'node:crypto'
import type {
  handleBidiStreamingCall,
  handleServerStreamingCall,
  handleUnaryCall,
  ServerDuplexStream,
  ServerUnaryCall,
  ServerWritableStream,
  sendUnaryData,
} from '@grpc/grpc-js'
import { Metadata, status } from '@grpc/grpc-js'
import type { Context, Span } from '@opentelemetry/api'
import type { CoreLogger } from '../core/logger.js'
import type { HelixMetrics } from '../core/metrics.js'
import {
  callerContext,
  endWithError,
  startRequestSpan,
  traceparentOf,
  tracingEnabled,
} from '../core/tracing.js'
import type { CallAuth } from './call-auth.js'
import { setCallTraceContext } from './call-trace.js'
import { refuseMalformed } from './request-decoding.js'
import { statusName, toServiceError } from './status.js'

/** What every handler gets besides its call. */
export interface GrpcContext {
  auth: CallAuth
  logger: CoreLogger
  metrics?: HelixMetrics
  /** Open streams, ended cleanly when the server drains. */
  streams: StreamRegistry
}

/** HTTP statuses standing for gRPC codes in the request log (the mapping of google.rpc.Code). */
const HTTP_EQUIVALENT: Partial<Record<status, number>> = {
  [status.OK]: 200,
  [status.CANCELLED]: 499,
  [status.INVALID_ARGUMENT]: 400,
  [status.DEADLINE_EXCEEDED]: 504,
  [status.NOT_FOUND]: 404,
  [status.ALREADY_EXISTS]: 409,
  [status.PERMISSION_DENIED]: 403,
  [status.UNAUTHENTICATED]: 401,
  [status.RESOURCE_EXHAUSTED]: 429,
  [status.FAILED_PRECONDITION]: 400,
  [status.UNIMPLEMENTED]: 501,
  [status.UNAVAILABLE]: 503,
}

export function httpEquivalent(code: status): number {
  return HTTP_EQUIVALENT[code] ?? 500
}

/** A request id for the request log: the client's x-request-id metadata when it sends one. */
export function requestIdOf(metadata: { get(key: string): unknown[] }): string {
  const given = metadata.get('x-request-id')[0]
  return typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID()
}

/** Counts and times one finished call, and logs what the client was not told (internal errors). */
export function finishCall(
  context: GrpcContext,
  method: string,
  started: number,
  code: status,
  err?: unknown,
): void {
  const name = statusName(code)
  context.metrics?.grpcRequests.inc({ method, code: name })
  context.metrics?.grpcDuration.observe({ method, code: name }, (performance.now() - started) / 1000)
  if (err !== undefined && (code === status.INTERNAL || code === status.UNKNOWN)) {
    context.logger.error({ err, method }, 'gRPC call failed')
  }
}

export { callTraceContext } from './call-trace.js'

/**
 * Tracing: a server span under the caller's traceparent metadata, returned in the response metadata;
 * undefined while tracing is off.
 */
function traceCall(
  call: { metadata: Metadata; sendMetadata(metadata: Metadata): void },
  method: string,
): { span: Span; context: Context } | undefined {
  if (!tracingEnabled()) return undefined
  const traced = startRequestSpan(method, callerContext(call.metadata.get('traceparent')[0]), {
    'rpc.method': method,
  })
  setCallTraceContext(call, traced.context)
  const returned = new Metadata()
  returned.set('traceparent', traceparentOf(traced.span))
  call.sendMetadata(returned)
  return traced
}

/** A unary handler from an async function: errors map once to their status (status.ts), every call is counted. */
export function unary<Req, Res>(
  context: GrpcContext,
  method: string,
  handle: (call: ServerUnaryCall<Req, Res>) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call, callback: sendUnaryData<Res>) => {
    const started = performance.now()
    const traced = traceCall(call, method)
    const answered = (async () => {
      refuseMalformed(call.request)
      return handle(call)
    })()
    answered.then(
      (response) => {
        callback(null, response)
        finishCall(context, method, started, status.OK)
        traced?.span.end()
      },
      (err: unknown) => {
        const answer = toServiceError(err)
        callback(answer)
        finishCall(context, method, started, answer.code, err)
        if (traced) endWithError(traced.span, err)
      },
    )
  }
}

/** What both kinds of server-side stream share: cancellation, ending, and a status through 'error'. */
interface OpenStream {
  cancelled: boolean
  metadata: Metadata
  sendMetadata(metadata: Metadata): void
  end(): void
  emit(event: 'error', err: unknown): boolean
}

/**
 * Runs a stream handler as an open stream (ended cleanly on a drain): counts it when `run` settles,
 * ends it (`endOnSuccess`) or sends the error's status. grpc-js turns an 'error' event on a server
 * stream into the call's status and ends it.
 */
function runStream<C extends OpenStream>(
  context: GrpcContext,
  method: string,
  call: C,
  run: (call: C, drained: Promise<void>) => Promise<void>,
  endOnSuccess: boolean,
): void {
  const started = performance.now()
  // One span for the whole stream; each message's inference hangs under it (callTraceContext).
  const traced = traceCall(call, method)
  const { drained, release } = context.streams.open()
  const ran = (async () => {
    // A server-streaming call's one request; a bidirectional call's messages are checked one by one.
    if ('request' in call) refuseMalformed(call.request)
    return run(call, drained)
  })()
  ran.then(
    () => {
      release()
      if (endOnSuccess && !call.cancelled) call.end()
      finishCall(context, method, started, call.cancelled ? status.CANCELLED : status.OK)
      traced?.span.end()
    },
    (err: unknown) => {
      release()
      const answer = toServiceError(err)
      if (!call.cancelled) call.emit('error', Object.assign(new Error(answer.details), answer))
      finishCall(context, method, started, answer.code, err)
      if (traced) endWithError(traced.span, err)
    },
  )
}

/**
 * A server-streaming handler: `run` writes until it is done, the call is cancelled or the server
 * drains; a thrown error ends the stream with its status.
 */
export function serverStream<Req, Res>(
  context: GrpcContext,
  method: string,
  run: (call: ServerWritableStream<Req, Res>, drained: Promise<void>) => Promise<void>,
): handleServerStreamingCall<Req, Res> {
  return (call) => runStream(context, method, call, run, true)
}

/** A bidirectional handler; `run` owns the call and resolves once it has ended it. */
export function bidiStream<Req, Res>(
  context: GrpcContext,
  method: string,
  run: (call: ServerDuplexStream<Req, Res>, drained: Promise<void>) => Promise<void>,
): handleBidiStreamingCall<Req, Res> {
  return (call) => runStream(context, method, call, run, false)
}

/**
 * Streams that stay open (ModelStreamInfer, WatchStats, Health.Watch) learn of a drain through the
 * promise they get, finish what they have in flight and end themselves; the server's graceful
 * shutdown then completes.
 */
export class StreamRegistry {
  private open_ = 0
  private draining = false
  private signalDrain!: () => void
  private readonly drainedPromise = new Promise<void>((resolve) => {
    this.signalDrain = resolve
  })
  private idle: (() => void)[] = []

  open(): { drained: Promise<void>; release: () => void } {
    this.open_ += 1
    let released = false
    return {
      drained: this.drainedPromise,
      release: () => {
        if (released) return
        released = true
        this.open_ -= 1
        if (this.open_ === 0) for (const resolve of this.idle.splice(0)) resolve()
      },
    }
  }

  get count(): number {
    return this.open_
  }

  get isDraining(): boolean {
    return this.draining
  }

  /** Tells every stream to finish; resolves when all have ended. */
  drain(): Promise<void> {
    this.draining = true
    this.signalDrain()
    if (this.open_ === 0) return Promise.resolve()
    return new Promise((resolve) => this.idle.push(resolve))
  }
}
