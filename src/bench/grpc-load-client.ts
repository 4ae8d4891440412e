import {
  type ClientHttp2Stream,
  constants,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2'
import { performance } from 'node:perf_hooks'
import { status } from '@grpc/grpc-js'
import { answerProblem, type InferAnswer, idField, type StreamAnswer } from './grpc-answer.js'
import { callHeaders, frameMessage, GrpcUnaryChannel, Http2Channel, MessageReader } from './grpc-lane.js'
import type { LaneStream, StreamHandler } from './http2-lane.js'
import { errorKind } from './load-client.js'
import type { LoadSender, Outcome } from './load-sender.js'
import { inferenceMethods } from './targets/grpc-protos.js'
import type { GrpcAnswerCheck, GrpcRequestPlan } from './types.js'

/** A failed call as an error kind: a passed deadline is a 'timeout' as for HTTP, else the status name. */
export function grpcErrorKind(err: { code: number }): string {
  if (err.code === status.DEADLINE_EXCEEDED) return 'timeout'
  return `grpc ${status[err.code] ?? err.code}`
}

/**
 * How a call ended: the error kind, or undefined for grpc-status 0. `httpStatus` is 0 without
 * response headers; `error` is the transport's error kind, if the stream did not end normally.
 */
function callFailure(
  httpStatus: number,
  grpcStatus: string | undefined,
  error: string | undefined,
): string | undefined {
  if (httpStatus !== 0 && httpStatus !== 200) return `http ${httpStatus}`
  if (grpcStatus !== undefined)
    return grpcStatus === '0' ? undefined : grpcErrorKind({ code: Number(grpcStatus) })
  return error ?? 'no grpc-status'
}

/** callFailure for a `node:http2` stream. */
function streamFailure(
  response: IncomingHttpHeaders | undefined,
  trailers: IncomingHttpHeaders | undefined,
  error: unknown,
  stream: ClientHttp2Stream,
): string | undefined {
  // A call refused before any message has no body: its status comes in the response headers.
  const grpcStatus = trailers?.['grpc-status'] ?? response?.['grpc-status']
  const kind = error !== undefined ? errorKind(error) : stream.rstCode ? 'stream reset' : undefined
  return callFailure(Number(response?.[':status'] ?? 0), grpcStatus as string | undefined, kind)
}

/**
 * One unary call on a GrpcUnaryChannel: it reads `:status`, `grpc-status` and `grpc-message` from the
 * response headers and trailers (a call refused at once has only headers), keeps the first message,
 * and settles once with a checked outcome.
 */
class UnaryCall implements StreamHandler {
  readonly sentAt = performance.now()
  stream?: LaneStream
  timedOut = false
  private status = 0
  private grpcStatus: string | undefined
  private answer: Buffer | undefined
  private reader: MessageReader | undefined

  constructor(
    private readonly from: number,
    private readonly check: GrpcAnswerCheck,
    private readonly resolve: (outcome: Outcome) => void,
    private readonly settled: (call: UnaryCall) => void,
  ) {}

  onHeaders(fields: string[]): void {
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i]
      if (name === ':status') {
        const status = Number(fields[i + 1])
        // An informational response (1xx) is followed by the real one.
        if (status >= 200) this.status = status
      } else if (name === 'grpc-status') this.grpcStatus = fields[i + 1]
    }
  }

  onData(data: Buffer): void {
    if (this.answer) return
    // The common case: a DATA frame that holds exactly one whole message.
    if (!this.reader && data.length >= 5 && data.readUInt32BE(1) === data.length - 5) {
      this.answer = data.subarray(5)
      return
    }
    this.reader ??= new MessageReader()
    this.reader.push(data, (message) => {
      this.answer ??= message
    })
  }

  onClose(error: string | undefined): void {
    const latencyMs = performance.now() - this.from
    const failure = this.timedOut ? 'timeout' : callFailure(this.status, this.grpcStatus, error)
    this.settled(this)
    this.resolve(failure ? { latencyMs, error: failure } : this.checked(latencyMs))
  }

  private checked(latencyMs: number): Outcome {
    if (!this.answer) return { latencyMs, error: 'no answer' }
    let decoded: InferAnswer
    try {
      decoded = inferenceMethods().ModelInfer.responseDeserialize(this.answer)
    } catch {
      return { latencyMs, error: 'undecodable answer' }
    }
    const problem = answerProblem(decoded, this.check)
    return problem ? { latencyMs, error: problem } : { latencyMs, checked: true }
  }
}

/**
 * Replays one encoded ModelInferRequest over gRPC and turns each answer into an outcome whose outputs
 * were checked (answerProblem). 'unary': a ModelInfer call per send, lanes dealt over the channels;
 * 'stream': one ModelStreamInfer stream per lane, answers matched to requests in order by their id.
 * A timeout is enforced by a sweep rather than a timer per call. Never throws: failures become
 * error kinds.
 */
export class GrpcLoadClient implements LoadSender {
  private readonly channels: GrpcUnaryChannel[] = []
  private readonly request: Buffer
  private readonly unary = new Set<UnaryCall>()
  private readonly streams: StreamLane[] = []
  private readonly streamChannels: Http2Channel[] = []
  private readonly sweep: NodeJS.Timeout

  constructor(
    private readonly plan: GrpcRequestPlan,
    lanes: number,
    private readonly timeoutMs: number,
  ) {
    const count = Math.max(1, plan.channels)
    // Posted to a worker thread, the bytes arrive as a plain Uint8Array: view them as a Buffer.
    this.request = Buffer.from(plan.request.buffer, plan.request.byteOffset, plan.request.byteLength)
    const methods = inferenceMethods()
    if (plan.method === 'stream') {
      const headers = callHeaders(methods.ModelStreamInfer.path, plan.metadata)
      for (let i = 0; i < count; i++) this.streamChannels.push(new Http2Channel(plan.target, plan.tls))
      for (let i = 0; i < Math.max(1, lanes); i++) {
        const channel = this.streamChannels[i % count]
        this.streams.push(new StreamLane(channel, headers, this.request, plan.check, `${i.toString(36)}.`))
      }
    } else {
      // The request is framed once; every call sends the same bytes.
      const request = {
        path: methods.ModelInfer.path,
        metadata: plan.metadata,
        framed: frameMessage(this.request),
      }
      for (let i = 0; i < count; i++) this.channels.push(new GrpcUnaryChannel(plan.target, plan.tls, request))
    }
    this.sweep = setInterval(() => this.expire(), Math.max(10, Math.min(1000, timeoutMs / 4)))
    this.sweep.unref()
  }

  send(from: number, lane = 0): Promise<Outcome> {
    if (this.streams.length > 0) return this.streams[lane % this.streams.length].send(from)
    return new Promise((resolve) => {
      const call = new UnaryCall(from, this.plan.check, resolve, this.settled)
      this.unary.add(call)
      call.stream = this.channels[lane % this.channels.length].call(call)
    })
  }

  private readonly settled = (call: UnaryCall): void => {
    this.unary.delete(call)
  }

  async close(): Promise<void> {
    clearInterval(this.sweep)
    await Promise.all(this.streams.map((s) => s.end()))
    for (const channel of [...this.channels, ...this.streamChannels]) channel.close()
  }

  private expire(): void {
    const now = performance.now()
    for (const call of this.unary) {
      if (call.timedOut || now - call.sentAt <= this.timeoutMs) continue
      call.timedOut = true
      call.stream?.cancel()
    }
    for (const stream of this.streams) stream.expire(now, this.timeoutMs)
  }
}

interface PendingRequest {
  id: string
  from: number
  sentAt: number
  resolve: (outcome: Outcome) => void
}

/** One ModelStreamInfer stream: requests written as they come, answers taken in the same order. */
class StreamLane {
  private stream?: ClientHttp2Stream
  private pending: PendingRequest[] = []
  private head = 0
  private seq = 0

  constructor(
    private readonly channel: Http2Channel,
    private readonly headers: OutgoingHttpHeaders,
    private readonly request: Buffer,
    private readonly check: GrpcAnswerCheck,
    private readonly idPrefix: string,
  ) {}

  send(from: number): Promise<Outcome> {
    const stream = this.stream ?? this.open()
    const id = this.idPrefix + (this.seq++).toString(36)
    return new Promise((resolve) => {
      this.pending.push({ id, from, sentAt: performance.now(), resolve })
      stream.write(frameMessage(this.request, idField(id)))
    })
  }

  /** Fails every waiting request when the oldest has waited longer than the timeout, and drops the stream. */
  expire(now: number, timeoutMs: number): void {
    const oldest = this.pending[this.head]
    if (!oldest || now - oldest.sentAt <= timeoutMs) return
    const stream = this.stream
    this.stream = undefined
    this.failAll('timeout')
    stream?.close(constants.NGHTTP2_CANCEL)
  }

  /** Half-closes the stream and waits (bounded) for the server to end it. */
  end(): Promise<void> {
    const stream = this.stream
    this.stream = undefined
    this.failAll('stream closed')
    if (!stream) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(() => stream.close(constants.NGHTTP2_CANCEL), 1000)
      stream.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
      stream.resume()
      stream.end()
    })
  }

  private open(): ClientHttp2Stream {
    const stream = this.channel.request(this.headers)
    this.stream = stream
    const reader = new MessageReader()
    let response: IncomingHttpHeaders | undefined
    let trailers: IncomingHttpHeaders | undefined
    let error: unknown
    stream.on('response', (headers) => {
      response = headers
    })
    stream.on('data', (chunk: Buffer) => {
      if (this.stream === stream) reader.push(chunk, (message) => this.answer(message))
    })
    stream.on('trailers', (headers) => {
      trailers = headers
    })
    stream.on('error', (err) => {
      error = err
    })
    // A stream that fails (or ends with requests unanswered) fails what it still owes; the next send
    // opens another. Streams of a failed connection close before the session reports why: wait for it.
    stream.once('close', () => {
      if (this.stream !== stream) return
      this.stream = undefined
      const owed = this.pending.slice(this.head)
      this.pending = []
      this.head = 0
      const fail = () => {
        const kind = streamFailure(
          response,
          trailers,
          response ? error : (this.channel.lastError ?? error),
          stream,
        )
        const now = performance.now()
        for (const request of owed)
          request.resolve({ latencyMs: now - request.from, error: kind ?? 'stream ended' })
      }
      if (response) fail()
      else setImmediate(fail)
    })
    return stream
  }

  private answer(message: Buffer): void {
    const request = this.take()
    if (!request) return
    const latencyMs = performance.now() - request.from
    let answer: StreamAnswer
    try {
      answer = inferenceMethods().ModelStreamInfer.responseDeserialize(message)
    } catch {
      request.resolve({ latencyMs, error: 'undecodable answer' })
      return
    }
    if (answer.error_message) {
      request.resolve({ latencyMs, error: `stream error: ${answer.error_message.slice(0, 100)}` })
      return
    }
    const problem = answer.infer_response
      ? answerProblem(answer.infer_response, this.check, request.id)
      : 'wrong outputs'
    request.resolve(problem ? { latencyMs, error: problem } : { latencyMs, checked: true })
  }

  private take(): PendingRequest | undefined {
    const request = this.pending[this.head]
    if (!request) return undefined
    this.pending[this.head++] = undefined as unknown as PendingRequest
    // Compact now and then instead of shifting on every answer.
    if (this.head === this.pending.length) {
      this.pending = []
      this.head = 0
    } else if (this.head > 1024) {
      this.pending = this.pending.slice(this.head)
      this.head = 0
    }
    return request
  }

  private failAll(kind: string): void {
    const now = performance.now()
    for (let request = this.take(); request; request = this.take()) {
      request.resolve({ latencyMs: now - request.from, error: kind })
    }
  }
}
