import net from 'node:net'
import tls from 'node:tls'
import type { RequestPlan } from './types.js'

/** What a finished exchange reports: the status and the raw Server-Timing header, or a failure. */
export type LaneCallback = (status: number, serverTiming: string | undefined, error?: string) => void

/** Where a lane connects and the exact bytes it sends for every request. */
export interface LaneTarget {
  host: string
  port: number
  tls: boolean
  /** The serialised request: request line, headers and body, sent unchanged each time. */
  request: Buffer
  /** Whether the response to this request can have a body (false for HEAD). */
  responseHasBody: boolean
  timeoutMs: number
  /** https: CAs to trust and the client certificate (PEM); certificates are always verified. */
  tlsOptions?: { ca?: string[]; cert?: string; key?: string }
}

const CRLF_CRLF = Buffer.from('\r\n\r\n')

/** Where lanes replaying `plan` connect and what they send (IPv6 brackets stripped, default ports). */
export function laneTarget(
  plan: Pick<RequestPlan, 'origin' | 'path' | 'method' | 'headers' | 'body' | 'tls'>,
  timeoutMs: number,
): LaneTarget {
  const url = new URL(plan.origin)
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: Number(url.port) || (url.protocol === 'https:' ? 443 : 80),
    tls: url.protocol === 'https:',
    request: serializeRequest(url, plan.path, plan.method, plan.headers, plan.body),
    responseHasBody: plan.method !== 'HEAD',
    timeoutMs,
    ...(plan.tls ? { tlsOptions: plan.tls } : {}),
  }
}

/**
 * Serialises one request once, so every send is a single write of the same bytes (what wrk and
 * autocannon do). Header values come from flags and target metadata: CR or LF in them would smuggle
 * a second request, so they are refused.
 */
export function serializeRequest(
  url: URL,
  path: string,
  method: string,
  headers: Record<string, string>,
  body: Uint8Array | undefined,
): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`]
  const given = new Set(Object.keys(headers).map((h) => h.toLowerCase()))
  if (!given.has('host')) lines.push(`host: ${url.host}`)
  for (const [name, value] of Object.entries(headers)) {
    // A value is written as latin1: anything outside it (or CR/LF) is refused, not garbled.
    if (!/^[\t\x20-\x7e\x80-\xff]*$/.test(value) || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name))
      throw new TypeError(`invalid request header "${name}"`)
    if (name.toLowerCase() === 'content-length') continue
    lines.push(`${name}: ${value}`)
  }
  if (body !== undefined || method === 'POST' || method === 'PUT' || method === 'PATCH')
    lines.push(`content-length: ${body?.byteLength ?? 0}`)
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1')
  return body === undefined ? head : Buffer.concat([head, body])
}

// How the parser is reading the current response.
enum State {
  Idle,
  Head,
  Length,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  UntilClose,
}

/**
 * One keep-alive HTTP/1.1 connection that replays a fixed request, one at a time (no pipelining),
 * with a parser that reads only what a load generator needs: the status, Content-Length or chunked
 * framing, Connection and Server-Timing. Bodies are skipped, never copied. It reconnects when the
 * server closes the connection. undici costs about 15 % more CPU per request than this, which made
 * the generator, not the server, the bottleneck; streaming responses (SSE) still go through undici.
 */
export class Http1Lane {
  private socket: net.Socket | undefined
  private callback: LaneCallback | undefined
  private state = State.Idle
  private head: Buffer | undefined
  private status = 0
  private serverTiming: string | undefined
  private remaining = 0
  private sizeLine = ''
  private closeAfter = false
  private readonly waiting: LaneCallback[] = []

  constructor(private readonly target: LaneTarget) {}

  /**
   * Sends the request; `done` runs exactly once with the outcome. A lane carries one exchange at a
   * time: sends made while one is in flight wait their turn (an open loop outrunning the server).
   */
  send(done: LaneCallback): void {
    if (this.callback) {
      this.waiting.push(done)
      return
    }
    this.start(done)
  }

  private start(done: LaneCallback): void {
    this.callback = done
    this.state = State.Head
    this.head = undefined
    this.status = 0
    this.serverTiming = undefined
    this.closeAfter = false
    const socket = this.socket ?? this.connect()
    socket.write(this.target.request)
  }

  /** Starts the next waiting exchange, if any. */
  private next(): void {
    const done = this.waiting.shift()
    if (done) this.start(done)
  }

  /** Closes the connection; an exchange in flight and those waiting end as 'socket closed'. */
  close(): void {
    const waiting = this.waiting.splice(0)
    if (this.socket) this.fail(this.socket, 'socket closed')
    for (const done of waiting) done(0, undefined, 'socket closed')
  }

  private connect(): net.Socket {
    const { host, port } = this.target
    const socket = this.target.tls
      ? tls.connect({
          host,
          port,
          servername: net.isIP(host) ? undefined : host,
          ALPNProtocols: ['http/1.1'],
          ...this.target.tlsOptions,
        })
      : net.connect({ host, port })
    socket.setNoDelay(true)
    // An idle-time limit: it fires only while a request waits, so idle keep-alive lanes survive.
    socket.setTimeout(this.target.timeoutMs)
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk))
    socket.on('timeout', () => {
      if (this.callback) this.fail(socket, 'timeout')
    })
    socket.on('error', (err: NodeJS.ErrnoException) => this.fail(socket, err.code ?? err.name))
    socket.on('end', () => {
      if (this.socket === socket && this.state === State.UntilClose) this.finish()
      this.fail(socket, 'socket closed')
    })
    socket.on('close', () => this.fail(socket, 'socket closed'))
    this.socket = socket
    return socket
  }

  /** Ends the exchange in flight on `socket` (if any) with an error, and forgets the socket. */
  private fail(socket: net.Socket, kind: string): void {
    socket.destroy()
    if (this.socket !== socket) return
    this.socket = undefined
    const done = this.callback
    if (!done) return
    this.callback = undefined
    this.state = State.Idle
    done(0, undefined, kind)
    this.next()
  }

  private finish(): void {
    const done = this.callback!
    this.callback = undefined
    this.state = State.Idle
    if (this.closeAfter) {
      const socket = this.socket
      this.socket = undefined
      socket?.destroy()
    }
    done(this.status, this.serverTiming)
    this.next()
  }

  private onData(socket: net.Socket, chunk: Buffer): void {
    let at = 0
    // Once an exchange ends the connection (an error, Connection: close), the rest of its bytes are
    // dropped: the next exchange may already be running on a new connection and must not read them.
    while (at < chunk.length && this.socket === socket) {
      switch (this.state) {
        case State.Idle:
          return // bytes nobody asked for (a server bug): ignore them
        case State.Head:
          at = this.readHead(chunk, at)
          break
        case State.Length:
          at = this.skip(chunk, at)
          if (this.remaining === 0) this.finish()
          break
        case State.ChunkSize:
        case State.Trailers:
          at = this.readLine(chunk, at)
          break
        case State.ChunkData:
          at = this.skip(chunk, at)
          if (this.remaining === 0) {
            this.state = State.ChunkDataEnd
            this.remaining = 2
          }
          break
        case State.ChunkDataEnd:
          at = this.skip(chunk, at)
          if (this.remaining === 0) this.state = State.ChunkSize
          break
        case State.UntilClose:
          return
      }
    }
  }

  /** Passes over up to `remaining` bytes of body or framing; returns where it stopped in `chunk`. */
  private skip(chunk: Buffer, at: number): number {
    const take = Math.min(this.remaining, chunk.length - at)
    this.remaining -= take
    return at + take
  }

  /** Collects the status line and headers; returns where the body starts in `chunk`. */
  private readHead(chunk: Buffer, at: number): number {
    if (this.head === undefined) {
      const end = chunk.indexOf(CRLF_CRLF, at)
      if (end < 0) {
        this.head = chunk.subarray(at)
        return chunk.length
      }
      this.parseHead(chunk.toString('latin1', at, end))
      return end + 4
    }
    // The head straddles chunks; its terminator may too, so search from just before the new bytes.
    const prior = this.head.length
    const buf = Buffer.concat([this.head, chunk.subarray(at)])
    const end = buf.indexOf(CRLF_CRLF, Math.max(0, prior - 3))
    if (end < 0) {
      this.head = buf
      return chunk.length
    }
    this.head = undefined
    this.parseHead(buf.toString('latin1', 0, end))
    return at + end + 4 - prior
  }

  private parseHead(text: string): void {
    const lines = text.split('\r\n')
    const status = Number(lines[0].slice(9, 12))
    if (!(status >= 100 && status <= 999) || !lines[0].startsWith('HTTP/1.')) {
      this.closeAfter = true
      this.fail(this.socket!, 'HPE_INVALID_STATUS')
      return
    }
    let length = -1
    let chunked = false
    this.closeAfter = lines[0].startsWith('HTTP/1.0')
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]
      const colon = line.indexOf(':')
      if (colon < 0) continue
      const name = line.slice(0, colon).toLowerCase()
      if (name === 'content-length') length = Number(line.slice(colon + 1))
      else if (name === 'transfer-encoding')
        chunked = line
          .slice(colon + 1)
          .toLowerCase()
          .includes('chunked')
      else if (name === 'server-timing') this.serverTiming = line.slice(colon + 1).trim()
      else if (name === 'connection') {
        const value = line
          .slice(colon + 1)
          .trim()
          .toLowerCase()
        if (value === 'close') this.closeAfter = true
        else if (value === 'keep-alive') this.closeAfter = false
      }
    }
    if (status < 200) {
      // 1xx (100 Continue, 103 Early Hints): the real response follows.
      this.serverTiming = undefined
      this.state = State.Head
      return
    }
    this.status = status
    if (!this.target.responseHasBody || status === 204 || status === 304) this.finish()
    else if (chunked) {
      this.state = State.ChunkSize
      this.sizeLine = ''
    } else if (length >= 0) {
      this.remaining = length
      this.state = State.Length
      if (length === 0) this.finish()
    } else {
      // Delimited by the end of the connection, which therefore cannot carry another exchange.
      this.state = State.UntilClose
      this.closeAfter = true
    }
  }

  /** Reads one CRLF-terminated line of chunked framing (a chunk size, or a trailer). */
  private readLine(chunk: Buffer, at: number): number {
    const nl = chunk.indexOf(10, at)
    if (nl < 0) {
      this.sizeLine += chunk.toString('latin1', at, chunk.length)
      return chunk.length
    }
    const line = (this.sizeLine + chunk.toString('latin1', at, nl)).replace(/\r$/, '')
    this.sizeLine = ''
    if (this.state === State.Trailers) {
      if (line === '') this.finish()
      return nl + 1
    }
    const size = Number.parseInt(line, 16)
    if (Number.isNaN(size)) {
      this.closeAfter = true
      this.fail(this.socket!, 'HPE_INVALID_CHUNK_SIZE')
      return chunk.length
    }
    if (size === 0) this.state = State.Trailers
    else {
      this.state = State.ChunkData
      this.remaining = size
    }
    return nl + 1
  }
}
