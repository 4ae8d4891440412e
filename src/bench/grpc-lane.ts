import http2, { type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders } from 'node:http2'
import net from 'node:net'
import tls from 'node:tls'
import { encodeHeaderBlock } from './hpack.js'
import { Http2Lane, type LaneStream, type StreamHandler } from './http2-lane.js'
import type { TlsOptions } from './types.js'

/**
 * gRPC's length-prefixed message (a compressed flag, 0, and the length, big-endian) around `message`
 * followed by `extra`, in one buffer so it goes out in one write.
 */
export function frameMessage(message: Buffer, extra?: Buffer): Buffer {
  const length = message.length + (extra?.length ?? 0)
  const framed = Buffer.allocUnsafe(5 + length)
  framed[0] = 0
  framed.writeUInt32BE(length, 1)
  message.copy(framed, 5)
  extra?.copy(framed, 5 + message.length)
  return framed
}

/** Splits the bytes of a response into gRPC messages: one may span DATA frames, or several share one. */
export class MessageReader {
  private pending?: Buffer

  push(chunk: Buffer, onMessage: (message: Buffer) => void): void {
    let data = this.pending ? Buffer.concat([this.pending, chunk]) : chunk
    this.pending = undefined
    while (data.length >= 5) {
      const end = 5 + data.readUInt32BE(1)
      if (data.length < end) break
      onMessage(data.subarray(5, end))
      data = data.subarray(end)
    }
    if (data.length > 0) this.pending = data
  }
}

/** Host and port of a `host:port` target (IPv6 brackets stripped). */
function hostPort(target: string): { host: string; port: number } {
  return {
    host: target.replace(/:\d+$/, '').replace(/^\[|\]$/g, ''),
    port: Number(/:(\d+)$/.exec(target)?.[1]),
  }
}

/**
 * One HTTP/2 connection to a gRPC server over `node:http2`, for ModelStreamInfer's long-lived streams,
 * opened on first use and again after it closes. Calls are plain HTTP/2 streams with gRPC's headers and framing (what grpc-js does, minus its per-call stack
 * of interceptors, resolver and retry buffers, which cost the load generator several times what the
 * server spends on a call). TLS always verifies the server's certificate.
 */
export class Http2Channel {
  private session?: ClientHttp2Session
  /** Why the last connection failed (ECONNREFUSED, a certificate error), until one succeeds. */
  lastError?: Error
  private readonly authority: string
  private readonly options: http2.ClientSessionOptions

  constructor(target: string, tlsOptions: TlsOptions | undefined) {
    this.authority = `${tlsOptions ? 'https' : 'http'}://${target}`
    const { host, port } = hostPort(target)
    this.options = {
      // Unbounded: the default (10 MB of outstanding frames) refuses streams under heavy load.
      maxSessionMemory: 1024,
      // Nagle's algorithm would hold a call's HEADERS frame back behind an unacknowledged write (as
      // grpc-js does, the socket sends at once). An IP address is not a valid TLS server name
      // (RFC 6066): none is sent for one, as Http1Lane does.
      createConnection: () =>
        tlsOptions
          ? tls
              .connect({
                host,
                port,
                ...tlsOptions,
                servername: net.isIP(host) ? undefined : host,
                ALPNProtocols: ['h2'],
              })
              .setNoDelay(true)
          : net.connect({ host, port, noDelay: true }),
    }
  }

  /** A new stream for a call with these request headers. */
  request(headers: OutgoingHttpHeaders): ClientHttp2Stream {
    const open =
      this.session && !this.session.closed && !this.session.destroyed ? this.session : this.connect()
    try {
      return open.request(headers)
    } catch {
      // A session the server sent GOAWAY on takes no new streams: open another connection.
      return this.connect().request(headers)
    }
  }

  close(): void {
    this.session?.close()
    this.session = undefined
  }

  private connect(): ClientHttp2Session {
    const session = http2.connect(this.authority, this.options)
    // A failed connection cancels its streams (ERR_HTTP2_STREAM_CANCEL); the cause is kept for them.
    session.on('error', (err) => {
      this.lastError = err
    })
    session.on('connect', () => {
      this.lastError = undefined
    })
    session.on('close', () => {
      if (this.session === session) this.session = undefined
    })
    session.unref()
    this.session = session
    return session
  }
}

/** The request headers of a gRPC call to `path` with `metadata` (lower-case names). */
export function callHeaders(path: string, metadata: Record<string, string>): OutgoingHttpHeaders {
  return {
    ...metadata,
    ':method': 'POST',
    ':path': path,
    'content-type': 'application/grpc',
    te: 'trailers',
    'user-agent': 'helix-bench',
  }
}

/** What a unary call is: the method's path and metadata, sent the same on every stream. */
export interface UnaryRequest {
  path: string
  metadata: Record<string, string>
  /** The framed request message (frameMessage). */
  framed: Buffer
}

/**
 * The HPACK header block of a gRPC call to `path` on `target`, built once: the pseudo-headers first,
 * then gRPC's headers and `metadata` (lower-case names). A value with CR, LF or NUL, or a name that is
 * not a lower-case token, is refused, as `node:http2` refuses them.
 */
export function grpcHeaderBlock(
  target: string,
  tlsOn: boolean,
  path: string,
  metadata: Record<string, string>,
): Buffer {
  const fields: [string, string][] = [
    [':method', 'POST'],
    [':scheme', tlsOn ? 'https' : 'http'],
    [':path', path],
    [':authority', target],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
    ['user-agent', 'helix-bench'],
  ]
  for (const [name, value] of Object.entries(metadata)) {
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name) || !/^[\t\x20-\x7e\x80-\xff]*$/.test(value))
      throw new TypeError(`invalid gRPC metadata "${name}"`)
    fields.push([name, value])
  }
  return encodeHeaderBlock(fields)
}

/**
 * The connection(s) of one gRPC channel for unary calls, over Http2Lane (a raw socket, not
 * `node:http2`, whose stream objects cost the load generator about twice the CPU per call of the
 * HTTP/1.1 lane). A call goes to the current lane; a lane that takes no more streams (GOAWAY, its
 * stream ids used up, a failed connection) is replaced by a new connection, and finishes what it
 * carries. TLS always verifies the server's certificate.
 */
export class GrpcUnaryChannel {
  private lane?: Http2Lane
  private readonly lanes = new Set<Http2Lane>()
  private readonly headerBlock: Buffer
  /** Connections opened so far. */
  connections = 0
  private closed = false

  constructor(
    private readonly target: string,
    private readonly tlsOptions: TlsOptions | undefined,
    private readonly request: UnaryRequest,
    private readonly maxStreamId?: number,
  ) {
    this.headerBlock = grpcHeaderBlock(target, tlsOptions !== undefined, request.path, request.metadata)
  }

  /** Why the last connection failed (ECONNREFUSED, a certificate error, GOAWAY), if it did. */
  get lastError(): Error | undefined {
    return this.lane?.lastError
  }

  /** Starts one call; `handler` hears its headers, messages and end. */
  call(handler: StreamHandler): LaneStream {
    return this.current().open(handler)
  }

  /** Ends every connection once the calls on it are over. */
  close(): void {
    this.closed = true
    for (const lane of this.lanes) lane.close()
    this.lanes.clear()
    this.lane = undefined
  }

  /** The lane that takes new calls: the last one opened, or a new connection once it takes no more. */
  private current(): Http2Lane {
    if (this.lane?.accepting) return this.lane
    const lane = new Http2Lane({
      ...hostPort(this.target),
      tls: this.tlsOptions,
      headerBlock: this.headerBlock,
      body: this.request.framed,
      maxStreamId: this.maxStreamId,
      // A call the server did not process (GOAWAY) is sent again on the channel's current connection.
      retry: (stream) => {
        if (this.closed) return false
        this.current().adopt(stream)
        return true
      },
    })
    this.connections++
    // A lane that neither takes streams nor carries any is over.
    for (const old of this.lanes) if (!old.accepting && old.active === 0) this.lanes.delete(old)
    this.lanes.add(lane)
    this.lane = lane
    return lane
  }
}
