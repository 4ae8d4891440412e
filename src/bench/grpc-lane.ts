import http2, { type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders } from 'node:http2'
import net from 'node:net'
import tls from 'node:tls'
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

/**
 * One HTTP/2 connection to a gRPC server, opened on first use and again after it closes. Calls are
 * plain HTTP/2 streams with gRPC's headers and framing (what grpc-js does, minus its per-call stack
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
    const host = target.replace(/:\d+$/, '').replace(/^\[|\]$/g, '')
    const port = Number(/:(\d+)$/.exec(target)?.[1])
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
