import net from 'node:net'
import tls from 'node:tls'
import { HpackDecoder, HpackError } from './hpack.js'
import type { TlsOptions } from './types.js'

// Frame types and flags (RFC 9113 section 6).
const DATA = 0x0
const HEADERS = 0x1
const RST_STREAM = 0x3
const SETTINGS = 0x4
const PUSH_PROMISE = 0x5
const PING = 0x6
const GOAWAY = 0x7
const WINDOW_UPDATE = 0x8
const CONTINUATION = 0x9
const END_STREAM = 0x1
const ACK = 0x1
const END_HEADERS = 0x4
const PADDED = 0x8
const PRIORITY = 0x20

// Error codes (RFC 9113 section 7), by value.
const ERROR_NAMES = [
  'NO_ERROR',
  'PROTOCOL_ERROR',
  'INTERNAL_ERROR',
  'FLOW_CONTROL_ERROR',
  'SETTINGS_TIMEOUT',
  'STREAM_CLOSED',
  'FRAME_SIZE_ERROR',
  'REFUSED_STREAM',
  'CANCEL',
  'COMPRESSION_ERROR',
  'CONNECT_ERROR',
  'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY',
  'HTTP_1_1_REQUIRED',
]
const PROTOCOL_ERROR = 0x1
const FLOW_CONTROL_ERROR = 0x3
const FRAME_SIZE_ERROR = 0x6
const REFUSED_STREAM = 0x7
const CANCEL = 0x8
const COMPRESSION_ERROR = 0x9

/** A connection error the server caused: the lane answers it with GOAWAY and this code. */
class ProtocolError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message)
  }
}

/** An HTTP/2 error code by its name (RFC 9113 section 7), or in hex when it has none. */
export function http2ErrorName(code: number): string {
  return ERROR_NAMES[code] ?? `0x${code.toString(16)}`
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
const DEFAULT_WINDOW = 65_535
const MAX_WINDOW = 2 ** 31 - 1
/** Frames this side accepts (SETTINGS_MAX_FRAME_SIZE left at its default) and the server starts with. */
const DEFAULT_FRAME_SIZE = 16_384
/** What this side lets the server send: per stream (SETTINGS_INITIAL_WINDOW_SIZE) and per connection. */
const RECEIVE_WINDOW = 16 * 1024 * 1024
/** The largest client stream id (2^31 - 1). */
export const MAX_STREAM_ID = 0x7fffffff

/** What a stream's owner hears: header blocks, data, and its end. */
export interface StreamHandler {
  /** A complete header block ([name, value, …]): the response headers, or the trailers. */
  onHeaders(fields: string[], endStream: boolean): void
  onData(data: Buffer): void
  /** The stream is over: `error` is undefined when the server ended it, else the error kind. */
  onClose(error: string | undefined): void
}

/** One request on a lane: its stream id once started, and what is left of its body to send. */
export class LaneStream {
  id = 0
  sendWindow = 0
  /** Body bytes sent so far. */
  sent = 0
  /** DATA bytes received since the last stream WINDOW_UPDATE. */
  received = 0
  closed = false
  /** Times the request was sent again after the server did not process it. */
  retries = 0

  constructor(
    /** The lane carrying the stream: another one after a retry on a new connection. */
    public lane: Http2Lane,
    readonly handler: StreamHandler,
  ) {}

  /** Back to a request not sent, on `lane`. */
  reset(lane: Http2Lane): void {
    this.lane = lane
    this.id = 0
    this.sent = 0
    this.received = 0
    this.sendWindow = 0
  }

  /** Ends the stream from this side (RST_STREAM CANCEL); the handler hears `cancelled`. */
  cancel(): void {
    this.lane.cancel(this)
  }
}

/** Where a lane connects and the exact request it sends on every stream. */
export interface Http2Target {
  host: string
  port: number
  /** Absent: plaintext (h2c, prior knowledge); present: TLS with ALPN h2, the certificate verified. */
  tls?: TlsOptions
  /** The request's HPACK header block (encodeHeaderBlock), the same on every stream. */
  headerBlock: Buffer
  /** The request body, sent unchanged after the headers on every stream. */
  body: Buffer
  /** The last stream id to use before the lane takes no more (default 2^31 - 1). */
  maxStreamId?: number
  /**
   * Takes a stream the server did not process (above a GOAWAY's last stream id, or not started when
   * it came) to send it on another connection; false: it fails with the GOAWAY instead.
   */
  retry?: (stream: LaneStream) => boolean
}

/** Times a request the server did not process is sent again before it fails. */
const MAX_RETRIES = 3

/** The frames of one request on the wire, built once per server frame size and reused per stream. */
interface RequestFrames {
  frameSize: number
  template: Buffer
  /** Where each frame starts in the template. */
  starts: number[]
  /** Copies of the template no write holds any longer. */
  free: RequestCopy[]
}

/** A copy of a request's frames, with the write callback that returns it to its set's free list. */
interface RequestCopy {
  frames: Buffer
  release: () => void
  set: RequestFrames
}

function frameHeader(out: Buffer, at: number, length: number, type: number, flags: number, id: number): void {
  out.writeUIntBE(length, at, 3)
  out[at + 3] = type
  out[at + 4] = flags
  out.writeUInt32BE(id, at + 5)
}

function frame(type: number, flags: number, id: number, payload?: Buffer): Buffer {
  const out = Buffer.allocUnsafe(9 + (payload?.length ?? 0))
  frameHeader(out, 0, payload?.length ?? 0, type, flags, id)
  payload?.copy(out, 9)
  return out
}

function u32Frame(type: number, id: number, ...values: number[]): Buffer {
  const payload = Buffer.allocUnsafe(4 * values.length)
  for (let i = 0; i < values.length; i++) payload.writeUInt32BE(values[i], 4 * i)
  return frame(type, 0, id, payload)
}

/**
 * One HTTP/2 connection over a raw `net` or `tls` socket (no `node:http2`) that replays one fixed
 * request on many concurrent streams, as h2load and ghz do: the HEADERS and DATA frames of a stream are
 * one template in which only the stream ids change, and the requests started in one event-loop turn
 * whose windows allow it go out in one write, their frames interleaved. It speaks what a client must: the preface and SETTINGS (16 MiB windows for what it receives,
 * push off), SETTINGS and PING acknowledgements, WINDOW_UPDATE for received DATA, the server's
 * SETTINGS_MAX_FRAME_SIZE, SETTINGS_MAX_CONCURRENT_STREAMS and send windows (a body beyond them waits
 * for WINDOW_UPDATE), RST_STREAM, and GOAWAY (the lane takes no new streams; those open finish, and
 * those the server did not process go to another connection through Http2Target.retry, as do streams
 * refused with REFUSED_STREAM). Response header blocks go through a full HPACK decoder. A protocol
 * violation by the server ends the connection with GOAWAY and fails its streams with the error's name.
 */
export class Http2Lane {
  private readonly socket: net.Socket
  private readonly decoder = new HpackDecoder()
  private readonly streams = new Map<number, LaneStream>()
  /** Streams not started: SETTINGS_MAX_CONCURRENT_STREAMS are open. */
  private waiting: LaneStream[] = []
  /** Started streams whose body waits for a send window. */
  private readonly blocked = new Set<LaneStream>()
  private nextId = 1
  private readonly maxStreamId: number
  private pending: Buffer | undefined
  private settingsSeen = false
  // The server's settings and the connection's send window.
  /** Until the server's SETTINGS say otherwise, 100 streams at once (the least RFC 9113 recommends). */
  private maxConcurrent = 100
  private initialWindow = DEFAULT_WINDOW
  private maxFrameSize = DEFAULT_FRAME_SIZE
  private sendWindow = DEFAULT_WINDOW
  /** DATA bytes received on the connection since its last WINDOW_UPDATE. */
  private received = 0
  // A header block split over HEADERS and CONTINUATION frames, while it lasts.
  private blockStream = 0
  private blockParts: Buffer[] = []
  private blockEnds = false
  private frames: RequestFrames | undefined
  /** Requests started in this event-loop turn, written together at its end (flush). */
  private batch: RequestCopy[] = []
  /** Why streams fail from now on, once the connection failed or closed. */
  private failure: string | undefined
  /** GOAWAY and its error code, once the server sent one: what the streams it cuts off fail with. */
  private goaway: string | undefined
  /** False once the lane takes no new streams: GOAWAY, its ids used up, closing, or closed. */
  accepting = true
  /** The cause of the connection's failure, for messages (ECONNREFUSED, a certificate error, GOAWAY). */
  lastError: Error | undefined

  constructor(private readonly target: Http2Target) {
    this.maxStreamId = target.maxStreamId ?? MAX_STREAM_ID
    if (target.headerBlock.length > DEFAULT_FRAME_SIZE)
      throw new TypeError(`request headers of ${target.headerBlock.length} bytes, over one HTTP/2 frame`)
    const { host, port } = target
    // An IP address is not a valid TLS server name (RFC 6066): none is sent for one, as Http1Lane does.
    const socket = target.tls
      ? tls.connect({
          host,
          port,
          ...target.tls,
          servername: net.isIP(host) ? undefined : host,
          ALPNProtocols: ['h2'],
        })
      : net.connect({ host, port })
    this.socket = socket
    // Nagle's algorithm would hold a stream's frames back behind an unacknowledged write.
    socket.setNoDelay(true)
    socket.unref()
    socket.on('data', (chunk: Buffer) => this.onData(chunk))
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(err.code ?? err.name, err))
    socket.on('close', () => this.fail(this.failure ?? this.goaway ?? 'socket closed'))
    if (socket instanceof tls.TLSSocket)
      socket.once('secureConnect', () => {
        if (socket.alpnProtocol !== 'h2')
          this.fail(
            'no h2 (ALPN)',
            new Error(`the server did not select h2 by ALPN (${socket.alpnProtocol})`),
          )
      })
    // The connection window starts at 64 KB whatever SETTINGS say: one WINDOW_UPDATE widens it.
    const settings = Buffer.alloc(12)
    settings.writeUInt16BE(0x2, 0) // SETTINGS_ENABLE_PUSH
    settings.writeUInt32BE(0, 2)
    settings.writeUInt16BE(0x4, 6) // SETTINGS_INITIAL_WINDOW_SIZE
    settings.writeUInt32BE(RECEIVE_WINDOW, 8)
    socket.cork()
    socket.write(PREFACE)
    socket.write(frame(SETTINGS, 0, 0, settings))
    socket.write(u32Frame(WINDOW_UPDATE, 0, RECEIVE_WINDOW - DEFAULT_WINDOW))
    socket.uncork()
  }

  /** Streams open or waiting to open. */
  get active(): number {
    return this.streams.size + this.waiting.length
  }

  /** Starts a stream for the request (or queues it while the server's stream limit is reached). */
  open(handler: StreamHandler): LaneStream {
    const stream = new LaneStream(this, handler)
    this.adopt(stream)
    return stream
  }

  /** Starts `stream`, new or from another lane whose server did not process it. */
  adopt(stream: LaneStream): void {
    stream.reset(this)
    if (!this.accepting) {
      const why = this.failure ?? 'lane closed'
      process.nextTick(() => this.finish(stream, why))
      return
    }
    if (this.streams.size >= this.maxConcurrent) this.waiting.push(stream)
    else this.start(stream)
    // The streams waiting hold the ids after nextId: once none is left, the lane takes no more.
    if (this.nextId + 2 * this.waiting.length > this.maxStreamId) this.accepting = false
  }

  /** Takes no new streams; the connection ends once those open are over. */
  close(): void {
    this.accepting = false
    this.endIfIdle()
  }

  cancel(stream: LaneStream): void {
    if (stream.closed) return
    if (stream.id === 0) this.waiting = this.waiting.filter((s) => s !== stream)
    else if (!this.failure) this.write(u32Frame(RST_STREAM, stream.id, CANCEL))
    this.finish(stream, 'cancelled')
  }

  private start(stream: LaneStream): void {
    if (this.nextId > this.maxStreamId) {
      this.accepting = false
      this.finish(stream, 'stream ids used up')
      return
    }
    const id = this.nextId
    this.nextId += 2
    stream.id = id
    stream.sendWindow = this.initialWindow
    this.streams.set(id, stream)
    const body = this.target.body
    if (stream.sendWindow >= body.length && this.sendWindow >= body.length) {
      stream.sendWindow -= body.length
      this.sendWindow -= body.length
      stream.sent = body.length
      // Sent at the end of this event-loop turn with the other requests started in it.
      this.batch.push(this.requestFrames(id))
      if (this.batch.length === 1) process.nextTick(this.flush)
      return
    }
    // Beyond a window: the headers now, the body as WINDOW_UPDATEs allow.
    const headers = frame(
      HEADERS,
      END_HEADERS | (body.length === 0 ? END_STREAM : 0),
      id,
      this.target.headerBlock,
    )
    this.write(headers)
    this.pump(stream)
  }

  /** Writes `data` after the requests waiting in the batch (their streams were opened first). */
  private write(data: Buffer): void {
    if (this.batch.length > 0) this.flush()
    this.socket.write(data)
  }

  /**
   * Writes the requests started in this event-loop turn with their frames interleaved (every HEADERS
   * frame, then every first DATA frame, …), as `node:http2` sends the frames of concurrent streams. Sent
   * back to back instead, requests reach the server one by one and it answers each in its own write:
   * a grpc-js server spent 0.26–0.29 CPU ms per 110 KB call that way, against 0.21 interleaved.
   */
  private readonly flush = (): void => {
    const batch = this.batch
    if (batch.length === 0) return
    this.batch = []
    if (this.failure) {
      for (const copy of batch) copy.release()
      return
    }
    if (batch.length === 1) {
      this.socket.write(batch[0].frames, batch[0].release)
      return
    }
    this.socket.cork()
    const rounds = Math.max(...batch.map((copy) => copy.set.starts.length))
    for (let r = 0; r < rounds; r++) {
      for (const { frames, release, set } of batch) {
        const starts = set.starts
        if (r >= starts.length) continue
        const last = r === starts.length - 1
        this.socket.write(
          frames.subarray(starts[r], last ? frames.length : starts[r + 1]),
          last ? release : undefined,
        )
      }
    }
    this.socket.uncork()
  }

  /** A copy of the request's frames with `id` in each frame header, free to be written. */
  private requestFrames(id: number): RequestCopy {
    let built = this.frames
    if (!built || built.frameSize !== this.maxFrameSize) {
      built = buildFrames(this.target.headerBlock, this.target.body, this.maxFrameSize)
      this.frames = built
    }
    const set = built
    let copy = set.free.pop()
    if (!copy) {
      const entry: RequestCopy = {
        frames: Buffer.from(set.template),
        release: () => set.free.push(entry),
        set,
      }
      copy = entry
    }
    for (const at of set.starts) copy.frames.writeUInt32BE(id, at + 5)
    return copy
  }

  /** Sends as much of the stream's body as the windows allow, and remembers it if some is left. */
  private pump(stream: LaneStream): void {
    const body = this.target.body
    this.socket.cork()
    while (stream.sent < body.length) {
      const size = Math.min(body.length - stream.sent, this.maxFrameSize, stream.sendWindow, this.sendWindow)
      if (size <= 0) break
      const last = stream.sent + size === body.length
      const header = Buffer.allocUnsafe(9)
      frameHeader(header, 0, size, DATA, last ? END_STREAM : 0, stream.id)
      this.write(header)
      this.write(body.subarray(stream.sent, stream.sent + size))
      stream.sent += size
      stream.sendWindow -= size
      this.sendWindow -= size
    }
    this.socket.uncork()
    if (stream.sent < body.length) this.blocked.add(stream)
    else this.blocked.delete(stream)
  }

  private finish(stream: LaneStream, error: string | undefined): void {
    if (stream.closed) return
    stream.closed = true
    this.streams.delete(stream.id)
    this.blocked.delete(stream)
    stream.handler.onClose(error)
    this.startWaiting()
    this.endIfIdle()
  }

  private endIfIdle(): void {
    if (this.accepting || this.failure || this.active > 0) return
    this.failure = 'lane closed'
    this.end(u32Frame(GOAWAY, 0, 0, 0))
  }

  /** Writes a last frame and ends the connection; a server that does not close its side is cut off. */
  private end(last: Buffer): void {
    this.socket.end(last)
    setTimeout(() => this.socket.destroy(), 1000).unref()
  }

  /** Ends every stream with `kind`; the socket is destroyed, or ended after `goaway`. */
  private fail(kind: string, cause?: Error, goaway?: Buffer): void {
    if (cause && !this.lastError) this.lastError = cause
    this.accepting = false
    this.failure ??= kind
    const streams = [...this.waiting, ...this.streams.values()]
    this.waiting = []
    for (const stream of streams) this.finish(stream, this.failure)
    if (goaway) this.end(goaway)
    else this.socket.destroy()
  }

  /** A connection error: GOAWAY with `code` to the server, then fail everything. */
  private connectionError({ code, message }: ProtocolError): void {
    const name = http2ErrorName(code)
    const payload = Buffer.allocUnsafe(8 + Buffer.byteLength(message))
    payload.writeUInt32BE(0, 0)
    payload.writeUInt32BE(code, 4)
    payload.write(message, 8)
    this.fail(`http2 ${name}`, new Error(`HTTP/2 ${name}: ${message}`), frame(GOAWAY, 0, 0, payload))
  }

  private onData(chunk: Buffer): void {
    let data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk
    this.pending = undefined
    if (!this.settingsSeen && data.toString('latin1', 0, 7) === 'HTTP/1.') {
      this.fail('not HTTP/2', new Error(`the server answered in HTTP/1: ${data.toString('latin1', 0, 40)}`))
      return
    }
    let at = 0
    this.socket.cork()
    while (data.length - at >= 9 && !this.failure) {
      const length = data.readUIntBE(at, 3)
      if (length > DEFAULT_FRAME_SIZE) {
        this.connectionError(
          new ProtocolError(FRAME_SIZE_ERROR, `a frame of ${length} bytes, over SETTINGS_MAX_FRAME_SIZE`),
        )
        break
      }
      if (data.length - at < 9 + length) break
      const type = data[at + 3]
      const flags = data[at + 4]
      const id = data.readUInt32BE(at + 5) & MAX_STREAM_ID
      const payload = data.subarray(at + 9, at + 9 + length)
      at += 9 + length
      try {
        if (!this.settingsSeen && type !== SETTINGS)
          throw new ProtocolError(PROTOCOL_ERROR, 'the server preface is not a SETTINGS frame')
        this.onFrame(type, flags, id, payload)
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err
        this.connectionError(err)
        break
      }
    }
    if (!this.failure) this.socket.uncork()
    if (at < data.length && !this.failure) {
      data = data.subarray(at)
      this.pending = data
    }
  }

  private onFrame(type: number, flags: number, id: number, payload: Buffer): void {
    if (this.blockStream !== 0 && (type !== CONTINUATION || id !== this.blockStream)) {
      throw new ProtocolError(PROTOCOL_ERROR, 'a header block not continued by CONTINUATION')
    }
    switch (type) {
      case DATA:
        this.onDataFrame(flags, id, payload)
        return
      case HEADERS:
        this.onHeadersFrame(flags, id, payload)
        return
      case CONTINUATION:
        if (this.blockStream === 0) throw new ProtocolError(PROTOCOL_ERROR, 'CONTINUATION without HEADERS')
        this.blockParts.push(payload)
        if (flags & END_HEADERS) {
          const block = Buffer.concat(this.blockParts)
          this.blockParts = []
          this.blockStream = 0
          this.onHeaderBlock(id, this.blockEnds, block)
        }
        return
      case RST_STREAM: {
        if (id === 0) throw new ProtocolError(PROTOCOL_ERROR, 'RST_STREAM on stream 0')
        if (payload.length !== 4) throw new ProtocolError(FRAME_SIZE_ERROR, 'RST_STREAM not of 4 bytes')
        const stream = this.streams.get(id)
        const code = payload.readUInt32BE(0)
        if (stream && code === REFUSED_STREAM) this.unprocessed(stream, 'stream reset (REFUSED_STREAM)')
        else if (stream) this.finish(stream, `stream reset (${http2ErrorName(code)})`)
        return
      }
      case SETTINGS:
        this.onSettings(flags, id, payload)
        return
      case PUSH_PROMISE:
        throw new ProtocolError(PROTOCOL_ERROR, 'PUSH_PROMISE with push disabled')
      case PING:
        if (id !== 0) throw new ProtocolError(PROTOCOL_ERROR, 'PING on a stream')
        if (payload.length !== 8) throw new ProtocolError(FRAME_SIZE_ERROR, 'PING not of 8 bytes')
        if (!(flags & ACK)) this.write(frame(PING, ACK, 0, payload))
        return
      case GOAWAY:
        this.onGoaway(id, payload)
        return
      case WINDOW_UPDATE:
        this.onWindowUpdate(id, payload)
        return
      default:
        // PRIORITY, and frame types this side does not know, are ignored (RFC 9113 sections 5.5, 6.3).
        return
    }
  }

  private onDataFrame(flags: number, id: number, payload: Buffer): void {
    if (id === 0) throw new ProtocolError(PROTOCOL_ERROR, 'DATA on stream 0')
    // Flow control counts the whole payload, padding included.
    this.received += payload.length
    if (this.received > RECEIVE_WINDOW)
      throw new ProtocolError(FLOW_CONTROL_ERROR, 'DATA beyond the connection window')
    if (this.received >= RECEIVE_WINDOW / 2) {
      this.write(u32Frame(WINDOW_UPDATE, 0, this.received))
      this.received = 0
    }
    let data = payload
    if (flags & PADDED) {
      const padding = payload.length > 0 ? payload[0] : 0
      if (payload.length === 0 || padding >= payload.length)
        throw new ProtocolError(PROTOCOL_ERROR, 'DATA padding longer than the frame')
      data = payload.subarray(1, payload.length - padding)
    }
    // DATA for a stream already over (cancelled here) only counts toward the connection window.
    const stream = this.streams.get(id)
    if (!stream) return
    stream.received += payload.length
    if (stream.received > RECEIVE_WINDOW) {
      this.write(u32Frame(RST_STREAM, id, FLOW_CONTROL_ERROR))
      this.finish(stream, 'stream reset (FLOW_CONTROL_ERROR)')
      return
    }
    if (data.length > 0) stream.handler.onData(data)
    if (flags & END_STREAM) {
      this.finish(stream, undefined)
      return
    }
    if (stream.received >= RECEIVE_WINDOW / 2) {
      this.write(u32Frame(WINDOW_UPDATE, id, stream.received))
      stream.received = 0
    }
  }

  private onHeadersFrame(flags: number, id: number, payload: Buffer): void {
    if (id === 0) throw new ProtocolError(PROTOCOL_ERROR, 'HEADERS on stream 0')
    let start = 0
    let end = payload.length
    if (flags & PADDED) {
      start = 1
      end -= payload.length > 0 ? payload[0] : 0
    }
    if (flags & PRIORITY) start += 5
    if (start > end) throw new ProtocolError(PROTOCOL_ERROR, 'HEADERS padding longer than the frame')
    const block = payload.subarray(start, end)
    const endStream = (flags & END_STREAM) !== 0
    if (flags & END_HEADERS) {
      this.onHeaderBlock(id, endStream, block)
      return
    }
    this.blockStream = id
    this.blockParts = [block]
    this.blockEnds = endStream
  }

  private onHeaderBlock(id: number, endStream: boolean, block: Buffer): void {
    // Every block is decoded, a closed stream's too, to keep the dynamic table in step with the server.
    let fields: string[]
    try {
      fields = this.decoder.decode(block)
    } catch (err) {
      throw err instanceof HpackError ? new ProtocolError(COMPRESSION_ERROR, err.message) : err
    }
    const stream = this.streams.get(id)
    if (!stream) return
    stream.handler.onHeaders(fields, endStream)
    if (endStream) this.finish(stream, undefined)
  }

  private onSettings(flags: number, id: number, payload: Buffer): void {
    if (id !== 0) throw new ProtocolError(PROTOCOL_ERROR, 'SETTINGS on a stream')
    if (flags & ACK) {
      if (payload.length !== 0) throw new ProtocolError(FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload')
      return
    }
    if (payload.length % 6 !== 0) throw new ProtocolError(FRAME_SIZE_ERROR, 'SETTINGS not in 6-byte entries')
    // The server's first SETTINGS: without SETTINGS_MAX_CONCURRENT_STREAMS, it sets no limit.
    if (!this.settingsSeen) this.maxConcurrent = Number.POSITIVE_INFINITY
    this.settingsSeen = true
    for (let at = 0; at < payload.length; at += 6) {
      const value = payload.readUInt32BE(at + 2)
      switch (payload.readUInt16BE(at)) {
        case 0x3: // SETTINGS_MAX_CONCURRENT_STREAMS
          this.maxConcurrent = value
          break
        case 0x4: {
          // SETTINGS_INITIAL_WINDOW_SIZE: every open stream's send window moves by the difference.
          if (value > MAX_WINDOW)
            throw new ProtocolError(FLOW_CONTROL_ERROR, `SETTINGS_INITIAL_WINDOW_SIZE of ${value}`)
          const delta = value - this.initialWindow
          this.initialWindow = value
          for (const stream of this.streams.values()) {
            stream.sendWindow += delta
            if (stream.sendWindow > MAX_WINDOW)
              throw new ProtocolError(FLOW_CONTROL_ERROR, 'a stream window beyond 2^31 - 1')
          }
          break
        }
        case 0x5: // SETTINGS_MAX_FRAME_SIZE
          if (value < DEFAULT_FRAME_SIZE || value > 16_777_215)
            throw new ProtocolError(PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE of ${value}`)
          this.maxFrameSize = value
          break
        // SETTINGS_HEADER_TABLE_SIZE needs nothing: the request's block empties the table it would size.
      }
    }
    this.write(frame(SETTINGS, ACK, 0))
    this.resume()
    this.startWaiting()
  }

  /**
   * A stream the server did not process (RST_STREAM REFUSED_STREAM, or beyond GOAWAY's last stream
   * id): sent again, on this lane while it takes streams, else on another (Http2Target.retry), a few
   * times at most; otherwise it fails with `kind`.
   */
  private unprocessed(stream: LaneStream, kind: string): void {
    this.streams.delete(stream.id)
    this.blocked.delete(stream)
    if (stream.retries++ >= MAX_RETRIES) this.finish(stream, kind)
    else if (this.accepting) {
      stream.reset(this)
      this.waiting.unshift(stream)
      this.startWaiting()
    } else if (!this.target.retry?.(stream)) this.finish(stream, kind)
  }

  /** Starts the streams waiting, as far as SETTINGS_MAX_CONCURRENT_STREAMS allows. */
  private startWaiting(): void {
    while (this.waiting.length > 0 && this.streams.size < this.maxConcurrent && !this.failure)
      this.start(this.waiting.shift()!)
  }

  private onGoaway(id: number, payload: Buffer): void {
    if (id !== 0) throw new ProtocolError(PROTOCOL_ERROR, 'GOAWAY on a stream')
    if (payload.length < 8) throw new ProtocolError(FRAME_SIZE_ERROR, 'GOAWAY shorter than 8 bytes')
    const lastStreamId = payload.readUInt32BE(0) & MAX_STREAM_ID
    const code = payload.readUInt32BE(4)
    const kind = `GOAWAY ${http2ErrorName(code)}`
    this.goaway = kind
    this.accepting = false
    if (code !== 0 && !this.lastError) {
      const debug = payload.toString('utf8', 8)
      this.lastError = new Error(`the server sent GOAWAY ${http2ErrorName(code)}${debug ? `: ${debug}` : ''}`)
    }
    // Streams above the last one the server processed, and those not started, were not processed.
    const unprocessed = [...this.waiting, ...[...this.streams.values()].filter((s) => s.id > lastStreamId)]
    this.waiting = []
    for (const stream of unprocessed) this.unprocessed(stream, kind)
    this.endIfIdle()
  }

  private onWindowUpdate(id: number, payload: Buffer): void {
    if (payload.length !== 4) throw new ProtocolError(FRAME_SIZE_ERROR, 'WINDOW_UPDATE not of 4 bytes')
    const increment = payload.readUInt32BE(0) & MAX_WINDOW
    if (id === 0) {
      if (increment === 0) throw new ProtocolError(PROTOCOL_ERROR, 'WINDOW_UPDATE of 0 on the connection')
      this.sendWindow += increment
      if (this.sendWindow > MAX_WINDOW)
        throw new ProtocolError(FLOW_CONTROL_ERROR, 'the connection window beyond 2^31 - 1')
      this.resume()
      return
    }
    const stream = this.streams.get(id)
    if (!stream) return
    if (increment === 0 || stream.sendWindow + increment > MAX_WINDOW) {
      const code = increment === 0 ? PROTOCOL_ERROR : FLOW_CONTROL_ERROR
      this.write(u32Frame(RST_STREAM, id, code))
      this.finish(stream, `stream reset (${http2ErrorName(code)})`)
      return
    }
    stream.sendWindow += increment
    if (this.blocked.has(stream)) this.pump(stream)
  }

  /** Sends what the windows now allow of the bodies waiting for them, oldest stream first. */
  private resume(): void {
    for (const stream of this.blocked) {
      if (this.sendWindow <= 0) return
      this.pump(stream)
    }
  }
}

/** The HEADERS frame and DATA frames (at most `frameSize` each, END_STREAM on the last) of one request. */
function buildFrames(headerBlock: Buffer, body: Buffer, frameSize: number): RequestFrames {
  const chunks = Math.ceil(body.length / frameSize)
  const template = Buffer.allocUnsafe(9 + headerBlock.length + 9 * chunks + body.length)
  frameHeader(template, 0, headerBlock.length, HEADERS, END_HEADERS | (chunks === 0 ? END_STREAM : 0), 0)
  headerBlock.copy(template, 9)
  const starts = [0]
  let at = 9 + headerBlock.length
  for (let i = 0; i < chunks; i++) {
    const start = i * frameSize
    const size = Math.min(frameSize, body.length - start)
    frameHeader(template, at, size, DATA, i === chunks - 1 ? END_STREAM : 0, 0)
    starts.push(at)
    body.copy(template, at + 9, start, start + size)
    at += 9 + size
  }
  return { frameSize, template, starts, free: [] }
}
