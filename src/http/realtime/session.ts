import { RequestCancel } from '../../core/infer/cancel-signal.js'
import { UserError } from '../../shared/errors.js'
import type { RequestFrame } from '../../shared/realtime-protocol.js'
import { type FrameWriter, type OutFrame, outFrame } from './frame-writer.js'

/** A frame of a request, kept until the client acknowledges it (a resume sends it again). */
interface RetainedFrame extends OutFrame {
  readonly seq: number
  readonly type: string
}

/** The frame types that end a request. */
const TERMINAL = new Set(['result', 'done', 'error'])

/** One request of a session: its cancellation and its numbered frames. */
export class RequestStream {
  readonly cancel = new RequestCancel()
  /** Frames not yet acknowledged, by ascending seq. */
  frames: RetainedFrame[] = []
  nextSeq = 1
  acked = 0
  /** Frames up to this seq were dropped unacknowledged (the resume buffer was full). */
  floor = 0
  finished = false
  /** Why the daemon (not the client) stopped it, for the last frame's message. */
  stopReason: string | undefined

  constructor(
    readonly id: string,
    readonly type: RequestFrame['type'],
  ) {}

  get lastSeq(): number {
    return this.nextSeq - 1
  }

  /** Cancels it for a reason of the daemon's (the client's own cancel has none). */
  stop(reason: string): void {
    if (this.cancel.aborted) return
    this.stopReason = reason
    this.cancel.abort()
  }
}

export interface ReplayOutcome {
  /** Ids named by the client that this session never received. */
  unknown: string[]
  /** Requests whose frames after the client's last seq are no longer all held. */
  lost: string[]
}

const escapeId = (id: string) => JSON.stringify(id)

/**
 * A client's realtime session: its requests, their numbered frames and the socket they go to. It
 * outlives its socket: when the connection drops, requests run on and their frames are kept (bounded
 * by resumeBufferBytes) until a resume attaches a new socket and replays every frame after the ones
 * the client acknowledged, or until the grace period ends and destroy() cancels them.
 */
export class RealtimeSession {
  private readonly requests = new Map<string, RequestStream>()
  private writer: FrameWriter | undefined
  private evicted: (() => void) | undefined
  private retainedBytes = 0
  private unfinished = 0

  constructor(
    readonly id: string,
    /** Whose session it is ('anonymous' without authentication); a resume must come from the same. */
    readonly owner: string,
    private readonly limits: { resumeBufferBytes: number; maxRequests: number },
    /** Told of each frame sent, by type (metrics). */
    private readonly onSend: (type: string) => void = () => {},
  ) {}

  get attached(): boolean {
    return this.writer !== undefined
  }

  /** Unfinished requests. */
  get running(): number {
    return this.unfinished
  }

  /** Requests whose last frames the client has not acknowledged yet (finished ones included). */
  get size(): number {
    return this.requests.size
  }

  get bufferedBytes(): number {
    return this.retainedBytes
  }

  /**
   * Starts a request; throws REQUEST_ID_IN_USE while an unfinished request has this id and
   * TOO_MANY_IN_FLIGHT past maxRequests. A finished request's id may be used again: its frames are
   * dropped, as the client has moved on.
   */
  open(id: string, type: RequestFrame['type']): RequestStream {
    const existing = this.requests.get(id)
    if (existing && !existing.finished) {
      throw new UserError(
        'REQUEST_ID_IN_USE',
        `Request id ${escapeId(id)} is already in use on this session.`,
        {
          hint: 'Give each request an id of its own; an id may be used again once its request ended.',
        },
      )
    }
    if (this.unfinished >= this.limits.maxRequests) {
      throw new UserError(
        'TOO_MANY_IN_FLIGHT',
        `This session already has ${this.unfinished} unfinished requests (realtime.max_requests_per_socket).`,
        { hint: 'Wait for a request to end, or open another socket.', details: { retryAfterSeconds: 1 } },
      )
    }
    if (existing) this.forget(existing)
    const stream = new RequestStream(id, type)
    this.requests.set(id, stream)
    this.unfinished++
    return stream
  }

  /**
   * Sends the next frame of a request: numbers it, keeps it for a resume and hands it to the socket
   * (if one is attached). `body` is the frame's other fields, or their JSON text without braces (an
   * infer result is encoded once, its INT64 digits kept). The result, done and error types end it.
   */
  emit(stream: RequestStream, type: string, body: Record<string, unknown> | string): void {
    if (stream.finished || !this.requests.has(stream.id)) return
    const seq = stream.nextSeq++
    const rest = typeof body === 'string' ? body : JSON.stringify(body).slice(1, -1)
    const text = `{"type":"${type}","id":${escapeId(stream.id)},"seq":${seq}${rest ? `,${rest}` : ''}}`
    const frame: RetainedFrame = { ...outFrame(text), seq, type }
    stream.frames.push(frame)
    this.retainedBytes += frame.size
    if (TERMINAL.has(type)) {
      stream.finished = true
      this.unfinished--
    }
    if (this.writer) {
      this.onSend(type)
      this.writer.push(frame)
    }
    if (this.retainedBytes > this.limits.resumeBufferBytes) this.shed(stream)
  }

  /** A frame that belongs to no request (session, pong, refusals): the current socket only. */
  sendControl(frame: Record<string, unknown>): void {
    if (!this.writer) return
    this.onSend(String(frame.type))
    this.writer.push(outFrame(JSON.stringify(frame)))
  }

  /** Whether the session has request `id` (unfinished, or its last frames not yet acknowledged). */
  knows(id: string): boolean {
    return this.requests.has(id)
  }

  /** The client has every frame of request `id` up to `seq`. */
  ack(id: string, seq: number): void {
    const stream = this.requests.get(id)
    if (!stream) return
    this.acknowledge(stream, Math.min(seq, stream.lastSeq))
  }

  /** The client's cancel: the request stops at its next step (its runner sends the last frame). */
  cancel(id: string): void {
    this.requests.get(id)?.cancel.abort()
  }

  /**
   * Sends the session's frames to this socket from now on. A socket it was attached to before (a
   * connection the client gave up on, not yet seen closed here) is told through its `evicted`.
   */
  attach(writer: FrameWriter, evicted: () => void = () => {}): void {
    const previous = this.evicted
    this.writer = writer
    this.evicted = evicted
    if (previous) previous()
  }

  /**
   * The socket of `writer` is gone (its connection stops the writer); true when it was the session's,
   * not one a resume replaced.
   */
  detach(writer?: FrameWriter): boolean {
    if (writer && writer !== this.writer) return false
    this.writer = undefined
    this.evicted = undefined
    return true
  }

  isAttachedTo(writer: FrameWriter): boolean {
    return this.writer === writer
  }

  /**
   * Sends again, in order, every frame after the client's last seq of each request (its last
   * acknowledged one when not named). A request whose frames are no longer all held is cancelled and
   * reported as lost.
   */
  replay(lastSeq: Record<string, number>): ReplayOutcome {
    const unknown = Object.keys(lastSeq).filter((id) => !this.requests.has(id))
    const lost: string[] = []
    for (const stream of [...this.requests.values()]) {
      // Own keys only: a request id may be "constructor" or "toString".
      const named = Object.hasOwn(lastSeq, stream.id) ? lastSeq[stream.id] : stream.acked
      const from = Math.min(Math.max(named, stream.acked), stream.lastSeq)
      if (from < stream.floor) {
        lost.push(stream.id)
        stream.stop('Frames of this request were dropped before the resume.')
        this.forget(stream)
        continue
      }
      this.acknowledge(stream, from)
      if (!this.writer) continue
      for (const frame of stream.frames) {
        frame.sent = false
        this.onSend(frame.type)
        this.writer.push(frame)
      }
    }
    return { unknown, lost }
  }

  /** Cancels every request and drops every frame (grace period over, a revoked credential). */
  destroy(): void {
    this.detach()
    for (const stream of this.requests.values()) stream.stop('The session ended.')
    this.requests.clear()
    this.retainedBytes = 0
    this.unfinished = 0
  }

  private acknowledge(stream: RequestStream, seq: number): void {
    if (seq <= stream.acked) return
    stream.acked = seq
    let drop = 0
    while (drop < stream.frames.length && stream.frames[drop].seq <= seq) {
      this.retainedBytes -= stream.frames[drop].size
      drop++
    }
    if (drop > 0) stream.frames.splice(0, drop)
    if (stream.finished && seq >= stream.lastSeq) this.forget(stream)
  }

  private forget(stream: RequestStream): void {
    for (const frame of stream.frames) this.retainedBytes -= frame.size
    stream.frames = []
    if (!stream.finished) {
      stream.finished = true
      this.unfinished--
    }
    this.requests.delete(stream.id)
  }

  /**
   * Over the resume buffer. Connected, frames the socket already took are dropped, oldest first
   * (a client that does not acknowledge cannot resume past them). Disconnected, nothing may be
   * dropped: the request that overflowed is cancelled instead, its frames kept for the resume.
   */
  private shed(overflowing: RequestStream): void {
    if (!this.writer) {
      overflowing.stop("The session's resume buffer filled while the client was disconnected.")
      return
    }
    for (const stream of [...this.requests.values()]) {
      while (stream.frames.length > 0 && stream.frames[0].sent) {
        const frame = stream.frames.shift() as RetainedFrame
        this.retainedBytes -= frame.size
        stream.floor = frame.seq
      }
      if (stream.finished && stream.frames.length === 0) this.requests.delete(stream.id)
      if (this.retainedBytes <= this.limits.resumeBufferBytes) return
    }
  }
}
