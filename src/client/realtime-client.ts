import WebSocket, { type ClientOptions, type RawData } from 'ws'
import { ERROR_KINDS, type ErrorCode } from '../shared/error-codes.js'
import { HelixError } from '../shared/errors.js'
import {
  type DeltaFrame,
  type DoneFrame,
  type EmbeddingsFrame,
  type EmbeddingsResultFrame,
  type ErrorFrame,
  type GenerateFrame,
  type InferFrame,
  type InferResultFrame,
  REALTIME_CLOSE,
  REALTIME_PATH,
  type RequestFrame,
  type ResumedFrame,
  type ServerFrame,
  type SessionFrame,
} from '../shared/realtime-protocol.js'

/**
 * A typed client of the daemon's WebSocket API (GET /v1/realtime, docs/realtime.md): many requests on
 * one socket, token streams as async iterables, automatic acknowledgements, and on an unexpected
 * disconnect a reconnect (exponential backoff with jitter) that resumes the session, so an iterator
 * sees every token once, in order, however often the connection drops.
 */

/** An error frame of the daemon, or the client's own CONNECTION_LOST / CANCELLED. */
export class RealtimeError extends HelixError {
  /** The HTTP status the same failure gets on REST (0 for the client's own errors). */
  readonly status: number
  readonly retryAfterSeconds?: number

  constructor(
    code: string,
    message: string,
    options: { status?: number; retryAfter?: number; cause?: unknown } = {},
  ) {
    // A code this build does not know (a newer daemon) keeps its text in the message's details.
    const known = code in ERROR_KINDS ? (code as ErrorCode) : 'INTERNAL'
    super(known, message, {
      ...(options.cause !== undefined ? { cause: options.cause } : {}),
      details: {
        code,
        ...(options.retryAfter !== undefined ? { retryAfterSeconds: options.retryAfter } : {}),
      },
    })
    this.status = options.status ?? 0
    if (options.retryAfter !== undefined) this.retryAfterSeconds = options.retryAfter
  }

  static of(frame: ErrorFrame): RealtimeError {
    return new RealtimeError(frame.code, frame.message, {
      status: frame.status,
      ...(frame.retry_after !== undefined ? { retryAfter: frame.retry_after } : {}),
    })
  }
}

export interface ReconnectOptions {
  /** First wait after a drop (default 100 ms); each failed attempt doubles it. */
  initialDelayMs?: number
  /** Longest wait between attempts (default 5000 ms). */
  maxDelayMs?: number
  /** Attempts before giving up with CONNECTION_LOST (default 10). */
  maxAttempts?: number
}

export type RealtimeClientEvent =
  | { type: 'connected'; sessionId: string }
  | { type: 'disconnected'; code: number; reason: string }
  | { type: 'reconnecting'; attempt: number; delayMs: number }
  | { type: 'resumed'; sessionId: string; requests: number }
  | { type: 'closed'; error?: Error }

export interface RealtimeClientOptions {
  /** ws(s)://host:port/v1/realtime, or the daemon's http(s):// base URL (the path is added). */
  url: string
  /**
   * An API key or access token; a function is called on each (re)connect, so a refreshed access
   * token keeps a long-lived client going (a socket closed with "credential expired" then resumes).
   */
  token?: string | (() => string | Promise<string>)
  /** false: a dropped connection fails every unfinished request. */
  reconnect?: ReconnectOptions | false
  /** How long a connection attempt (upgrade, auth, session frame) may take (default 10 s). */
  connectTimeoutMs?: number
  /** Acknowledgements of stream frames are batched over this long (default 50 ms). */
  ackDelayMs?: number
  /** Options of the ws socket: TLS (ca, cert, key), headers, agent. */
  socket?: ClientOptions
  /** Told of connection changes (logging, tests). */
  onEvent?: (event: RealtimeClientEvent) => void
}

type GenerateParams = Omit<GenerateFrame, 'type' | 'id'>
type EmbedParams = Omit<EmbeddingsFrame, 'type' | 'id'>
type InferParams = Omit<InferFrame, 'type' | 'id'>
type StreamFrame = DeltaFrame | DoneFrame | InferResultFrame | EmbeddingsResultFrame | ErrorFrame

interface Pending {
  frame: RequestFrame
  /** The last seq received (0: none yet). */
  lastSeq: number
  /** Whether the request frame went out on some socket (the daemon may or may not have it). */
  sent: boolean
  /** Cancelled while no socket was open: the cancel goes out once one is. */
  cancelPending: boolean
  onFrame(frame: StreamFrame): void
  fail(error: Error): void
}

interface Deferred<T> {
  promise: Promise<T>
  resolve(value: T): void
  reject(error: Error): void
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void
  let reject!: (error: Error) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  // Handled where awaited; never an unhandled rejection when nobody is.
  promise.catch(() => {})
  return { promise, resolve, reject }
}

/** Closes after which reconnecting cannot help. */
function fatalClose(code: number): boolean {
  return (
    code === REALTIME_CLOSE.normal ||
    code === REALTIME_CLOSE.tooBig ||
    code === REALTIME_CLOSE.unauthenticated ||
    code === REALTIME_CLOSE.sessionTaken ||
    code === REALTIME_CLOSE.tooMany ||
    code === 1008
  )
}

function closeError(code: number, reason: string): RealtimeError {
  if (code === REALTIME_CLOSE.unauthenticated)
    return new RealtimeError(
      'UNAUTHENTICATED',
      `The daemon closed the socket: ${reason || 'unauthenticated'}.`,
      {
        status: 401,
      },
    )
  if (code === REALTIME_CLOSE.tooMany)
    return new RealtimeError(
      'RATE_LIMITED',
      `The daemon closed the socket: ${reason || 'too many sockets'}.`,
      {
        status: 429,
      },
    )
  return new RealtimeError('CONNECTION_LOST', `The connection closed (${code}${reason ? ` ${reason}` : ''}).`)
}

/** The WebSocket URL of a daemon URL: http(s) becomes ws(s), and a bare base gets /v1/realtime. */
export function realtimeUrl(url: string): string {
  const parsed = new URL(url)
  if (parsed.protocol === 'http:') parsed.protocol = 'ws:'
  if (parsed.protocol === 'https:') parsed.protocol = 'wss:'
  if (parsed.pathname === '/' || parsed.pathname === '') parsed.pathname = REALTIME_PATH
  return parsed.toString()
}

/** A token stream: iterate it for the deltas; `result` is the done frame (or the failure). */
export class GenerationStream implements AsyncIterable<DeltaFrame> {
  private readonly deltas: DeltaFrame[] = []
  private readonly done = deferred<DoneFrame>()
  private wake: (() => void) | undefined
  private ended = false
  private failure: Error | undefined
  private iterating = false

  constructor(
    readonly id: string,
    private readonly onCancel: () => void,
  ) {}

  /** The done frame (finish reason, usage, held-back text); rejects with the request's error. */
  get result(): Promise<DoneFrame> {
    return this.done.promise
  }

  /** Stops the generation at its next step; the stream then ends with a CANCELLED error. */
  cancel(): void {
    if (!this.ended) this.onCancel()
  }

  /** Reads the stream to its end and returns the whole text (every delta, then done's text). */
  async text(): Promise<string> {
    let text = ''
    for await (const delta of this) text += delta.text
    return text + (await this.result).text
  }

  async *[Symbol.asyncIterator](): AsyncIterator<DeltaFrame> {
    if (this.iterating) throw new RealtimeError('INVALID_INPUT', 'A generation stream can be iterated once.')
    this.iterating = true
    try {
      for (;;) {
        const next = this.deltas.shift()
        if (next) {
          yield next
          continue
        }
        if (this.failure) throw this.failure
        if (this.ended) return
        await new Promise<void>((resolve) => {
          this.wake = resolve
        })
      }
    } finally {
      // Leaving the loop early (break, an exception in the consumer) cancels the generation.
      if (!this.ended) this.cancel()
    }
  }

  /** @internal */
  push(frame: StreamFrame): void {
    if (frame.type === 'delta') this.deltas.push(frame)
    else if (frame.type === 'done') {
      this.ended = true
      this.done.resolve(frame)
    } else if (frame.type === 'error') this.fail(RealtimeError.of(frame))
    this.notify()
  }

  /** @internal */
  fail(error: Error): void {
    if (this.ended) return
    this.ended = true
    this.failure = error
    this.done.reject(error)
    this.notify()
  }

  private notify(): void {
    const wake = this.wake
    this.wake = undefined
    wake?.()
  }
}

export class RealtimeClient {
  private readonly url: string
  private readonly reconnectOptions: Required<ReconnectOptions> | false
  private state: 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed' = 'idle'
  private ws: WebSocket | undefined
  private session: { id: string; token: string; heartbeatMs: number } | undefined
  private handshake: { ws: WebSocket; ready: Deferred<SessionFrame> } | undefined
  private resuming: Deferred<ResumedFrame> | undefined
  private readonly pending = new Map<string, Pending>()
  /** Acknowledgements not yet sent, by request (cumulative: the highest seq). */
  private readonly acks = new Map<string, number>()
  private ackTimer: NodeJS.Timeout | undefined
  private watchdog: NodeJS.Timeout | undefined
  private lastSeen = 0
  private nextId = 0
  private readonly pings = new Map<number, () => void>()
  private sleeper: { timer: NodeJS.Timeout; wake: () => void } | undefined
  private connecting: Promise<void> | undefined

  constructor(private readonly options: RealtimeClientOptions) {
    this.url = realtimeUrl(options.url)
    this.reconnectOptions =
      options.reconnect === false
        ? false
        : { initialDelayMs: 100, maxDelayMs: 5000, maxAttempts: 10, ...options.reconnect }
  }

  /** The session's id once connected (it stays the same across resumes). */
  get sessionId(): string | undefined {
    return this.session?.id
  }

  get connected(): boolean {
    return this.state === 'open'
  }

  /** Opens the socket, authenticates and waits for the session; rejects when that fails. */
  connect(): Promise<void> {
    if (this.state === 'closed')
      return Promise.reject(new RealtimeError('INVALID_INPUT', 'This client was closed.'))
    if (this.connecting) return this.connecting
    this.state = 'connecting'
    this.connecting = this.establish().catch((err: Error) => {
      this.shutdown(err)
      throw err
    })
    return this.connecting
  }

  /** Streams a generation; iterate the result for deltas, await `.result` for the done frame. */
  generate(params: GenerateParams): GenerationStream {
    const id = this.newId()
    const stream = new GenerationStream(id, () => this.cancel(id))
    this.submit({ type: 'generate', id, ...params } as GenerateFrame, {
      onFrame: (frame) => stream.push(frame),
      fail: (error) => stream.fail(error),
    })
    return stream
  }

  embed(params: EmbedParams): Promise<EmbeddingsResultFrame> {
    return this.single<EmbeddingsResultFrame>({
      type: 'embeddings',
      id: this.newId(),
      ...params,
    } as EmbeddingsFrame)
  }

  infer(params: InferParams): Promise<InferResultFrame> {
    return this.single<InferResultFrame>({ type: 'infer', id: this.newId(), ...params } as InferFrame)
  }

  /** An application-level round trip; resolves with its time in milliseconds. */
  ping(): Promise<number> {
    const started = performance.now()
    const token = ++this.nextId
    return new Promise((resolve, reject) => {
      if (this.state !== 'open' || !this.ws) {
        reject(new RealtimeError('CONNECTION_LOST', 'The client is not connected.'))
        return
      }
      this.pings.set(token, () => resolve(performance.now() - started))
      this.ws.send(JSON.stringify({ type: 'ping', data: token }))
    })
  }

  /** Closes the socket (the daemon then drops the session); unfinished requests fail with CANCELLED. */
  async close(): Promise<void> {
    if (this.state === 'closed') return
    const ws = this.ws
    this.shutdown(new RealtimeError('CANCELLED', 'The client was closed.'))
    if (!ws || ws.readyState === WebSocket.CLOSED) return
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => ws.terminate(), 2000)
      ws.once('close', () => {
        clearTimeout(force)
        resolve()
      })
      ws.close(REALTIME_CLOSE.normal)
    })
  }

  /** A method, not a comparison, so TypeScript does not narrow the state across awaits. */
  private isClosed(): boolean {
    return this.state === 'closed'
  }

  private newId(): string {
    return `r${++this.nextId}`
  }

  private single<T extends InferResultFrame | EmbeddingsResultFrame>(frame: RequestFrame): Promise<T> {
    const answer = deferred<T>()
    this.submit(frame, {
      onFrame: (f) => {
        if (f.type === 'error') answer.reject(RealtimeError.of(f))
        else if (f.type === 'result') answer.resolve(f as T)
      },
      fail: (error) => answer.reject(error),
    })
    return answer.promise
  }

  private submit(frame: RequestFrame, handlers: Pick<Pending, 'onFrame' | 'fail'>): void {
    if (this.state === 'closed' || this.state === 'idle') {
      handlers.fail(new RealtimeError('INVALID_INPUT', 'Call connect() first; this client is not open.'))
      return
    }
    const pending: Pending = { frame, lastSeq: 0, sent: false, cancelPending: false, ...handlers }
    this.pending.set(frame.id, pending)
    if (this.state === 'open') this.sendRequest(pending)
  }

  private sendRequest(pending: Pending): void {
    if (!this.ws) return
    pending.sent = true
    this.ws.send(JSON.stringify(pending.frame))
  }

  private cancel(id: string): void {
    const pending = this.pending.get(id)
    if (!pending) return
    if (this.state === 'open' && this.ws) this.ws.send(JSON.stringify({ type: 'cancel', id }))
    else pending.cancelPending = true
  }

  /** Opens a socket, authenticates, and resumes the previous session when requests are unfinished. */
  private async establish(): Promise<void> {
    const tokenOption = this.options.token
    const token = typeof tokenOption === 'function' ? await tokenOption() : tokenOption
    if (this.state === 'closed') throw new RealtimeError('CANCELLED', 'The client was closed.')
    const ws = new WebSocket(this.url, this.options.socket)
    const ready = deferred<SessionFrame>()
    this.ws = ws
    this.handshake = { ws, ready }
    ws.on('message', (data) => this.onMessage(ws, data))
    ws.on('close', (code, reason) => this.onSocketClose(ws, code, reason.toString()))
    ws.on('ping', () => this.touch())
    ws.on('error', (err) => {
      if (this.handshake?.ws === ws)
        ready.reject(new RealtimeError('CONNECTION_LOST', err.message, { cause: err }))
    })
    ws.once('open', () =>
      ws.send(JSON.stringify({ type: 'auth', ...(token !== undefined ? { token } : {}) })),
    )
    const timeout = setTimeout(() => {
      ready.reject(new RealtimeError('CONNECTION_LOST', 'The daemon did not open a session in time.'))
      ws.terminate()
    }, this.options.connectTimeoutMs ?? 10_000)
    let fresh: SessionFrame
    try {
      fresh = await ready.promise
      if (this.isClosed()) throw new RealtimeError('CANCELLED', 'The client was closed.')
      const previous = this.session
      const wanted = [...this.pending.values()].filter((p) => p.sent)
      if (previous && (wanted.length > 0 || this.acks.size > 0))
        await this.resume(ws, previous, fresh, wanted)
      else this.session = { id: fresh.session_id, token: fresh.resume_token, heartbeatMs: fresh.heartbeat_ms }
    } catch (err) {
      if (this.ws === ws) ws.terminate()
      throw err
    } finally {
      clearTimeout(timeout)
      if (this.handshake?.ws === ws) this.handshake = undefined
    }
    this.state = 'open'
    this.options.onEvent?.({ type: 'connected', sessionId: this.session?.id as string })
    this.watch(this.session?.heartbeatMs ?? fresh.heartbeat_ms)
    for (const pending of this.pending.values()) {
      if (!pending.sent) this.sendRequest(pending)
      if (pending.cancelPending) {
        pending.cancelPending = false
        ws.send(JSON.stringify({ type: 'cancel', id: pending.frame.id }))
      }
    }
    this.flushAcks()
  }

  /**
   * Takes the previous session over: the daemon replays every frame after the ones received here.
   * When it no longer has the session, requests that have received nothing are sent again on the new
   * one; the others fail with CONNECTION_LOST (resending could repeat tokens).
   */
  private async resume(
    ws: WebSocket,
    previous: { id: string; token: string; heartbeatMs: number },
    fresh: SessionFrame,
    wanted: Pending[],
  ): Promise<void> {
    const lastSeq: Record<string, number> = Object.fromEntries(this.acks)
    for (const pending of wanted) lastSeq[pending.frame.id] = pending.lastSeq
    this.acks.clear()
    this.resuming = deferred<ResumedFrame>()
    ws.send(
      JSON.stringify({
        type: 'resume',
        session_id: previous.id,
        resume_token: previous.token,
        last_seq: lastSeq,
      }),
    )
    try {
      const resumed = await this.resuming.promise
      this.session = { id: resumed.session_id, token: resumed.resume_token, heartbeatMs: fresh.heartbeat_ms }
      for (const id of resumed.unknown) {
        const pending = this.pending.get(id)
        if (pending) pending.sent = false
      }
      this.options.onEvent?.({ type: 'resumed', sessionId: resumed.session_id, requests: wanted.length })
    } catch (err) {
      if (!(err instanceof RealtimeError) || err.details?.code !== 'SESSION_NOT_FOUND') throw err
      this.session = { id: fresh.session_id, token: fresh.resume_token, heartbeatMs: fresh.heartbeat_ms }
      for (const pending of wanted) {
        if (pending.lastSeq === 0) pending.sent = false
        else {
          this.pending.delete(pending.frame.id)
          pending.fail(
            new RealtimeError('CONNECTION_LOST', `The session ended while request ${pending.frame.id} ran.`, {
              cause: err,
            }),
          )
        }
      }
    } finally {
      this.resuming = undefined
    }
  }

  private onMessage(ws: WebSocket, data: RawData): void {
    if (ws !== this.ws) return
    this.touch()
    let frame: ServerFrame
    try {
      frame = JSON.parse(String(data)) as ServerFrame
    } catch {
      return
    }
    switch (frame.type) {
      case 'session':
        if (this.handshake?.ws === ws) this.handshake.ready.resolve(frame)
        return
      case 'resumed':
        this.resuming?.resolve(frame)
        return
      case 'pong': {
        const done = this.pings.get(frame.data as number)
        this.pings.delete(frame.data as number)
        done?.()
        return
      }
      case 'error':
        if (frame.seq === undefined) {
          this.refused(frame)
          return
        }
        this.onStreamFrame(frame)
        return
      default:
        this.onStreamFrame(frame)
    }
  }

  /** An error frame without seq: a refused frame (no request started), or a refused resume. */
  private refused(frame: ErrorFrame): void {
    const pending = frame.id !== undefined ? this.pending.get(frame.id) : undefined
    if (pending) {
      this.pending.delete(frame.id as string)
      pending.fail(RealtimeError.of(frame))
      return
    }
    if (this.resuming) this.resuming.reject(RealtimeError.of(frame))
  }

  private onStreamFrame(frame: StreamFrame): void {
    const pending = this.pending.get(frame.id as string)
    if (!pending || frame.seq === undefined) return
    // A replay may overlap what arrived before the drop: each seq is taken once, in order.
    if (frame.seq <= pending.lastSeq) return
    if (frame.seq !== pending.lastSeq + 1) {
      this.pending.delete(pending.frame.id)
      pending.fail(new RealtimeError('RESUME_GAP', `Frames of request ${pending.frame.id} went missing.`))
      return
    }
    pending.lastSeq = frame.seq
    this.acks.set(pending.frame.id, frame.seq)
    const last = frame.type === 'done' || frame.type === 'result' || frame.type === 'error'
    if (last) {
      this.pending.delete(pending.frame.id)
      // The daemon frees a finished request once it is acknowledged.
      this.flushAcks()
    } else this.scheduleAcks()
    pending.onFrame(frame)
  }

  private scheduleAcks(): void {
    if (this.ackTimer) return
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined
      this.flushAcks()
    }, this.options.ackDelayMs ?? 50)
  }

  private flushAcks(): void {
    if (this.ackTimer) clearTimeout(this.ackTimer)
    this.ackTimer = undefined
    const ws = this.ws
    if (this.state !== 'open' || !ws || ws.readyState !== WebSocket.OPEN) return
    for (const [id, seq] of this.acks) ws.send(JSON.stringify({ type: 'ack', id, seq }))
    this.acks.clear()
  }

  private touch(): void {
    this.lastSeen = Date.now()
  }

  /** A daemon that sends nothing (not even its pings) for two heartbeats is gone: drop and reconnect. */
  private watch(heartbeatMs: number): void {
    if (this.watchdog) clearInterval(this.watchdog)
    this.touch()
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastSeen > 2 * heartbeatMs + 1000) this.ws?.terminate()
    }, heartbeatMs)
    this.watchdog.unref()
  }

  private onSocketClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.ws) return
    this.ws = undefined
    const error = closeError(code, reason)
    if (this.handshake?.ws === ws) this.handshake.ready.reject(error)
    this.resuming?.reject(error)
    for (const done of this.pings.values()) done()
    this.pings.clear()
    if (this.state !== 'open') return
    this.options.onEvent?.({ type: 'disconnected', code, reason })
    const renewable = reason === 'credential expired' && typeof this.options.token === 'function'
    if (this.reconnectOptions === false || (fatalClose(code) && !renewable)) {
      this.shutdown(error)
      return
    }
    void this.reconnect()
  }

  private async reconnect(): Promise<void> {
    const options = this.reconnectOptions
    if (options === false) return
    this.state = 'reconnecting'
    if (this.watchdog) clearInterval(this.watchdog)
    let lastError: Error | undefined
    for (let attempt = 1; attempt <= options.maxAttempts; attempt++) {
      const base = Math.min(options.maxDelayMs, options.initialDelayMs * 2 ** (attempt - 1))
      // Equal jitter: clients dropped together do not come back together.
      const delayMs = Math.round(base / 2 + (Math.random() * base) / 2)
      this.options.onEvent?.({ type: 'reconnecting', attempt, delayMs })
      await this.sleep(delayMs)
      if (this.isClosed()) return
      try {
        await this.establish()
        return
      } catch (err) {
        lastError = err as Error
        if (this.isClosed()) return
        const code = (err as RealtimeError).code
        if (code === 'UNAUTHENTICATED' && typeof this.options.token !== 'function') break
      }
    }
    this.shutdown(
      new RealtimeError(
        'CONNECTION_LOST',
        `Could not reconnect: ${lastError?.message ?? 'no attempt left'}`,
        {
          cause: lastError,
        },
      ),
    )
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sleeper = undefined
        resolve()
      }, ms)
      this.sleeper = { timer, wake: resolve }
    })
  }

  /** Ends the client: every unfinished request fails with `error`. */
  private shutdown(error: Error): void {
    if (this.state === 'closed') return
    this.state = 'closed'
    if (this.watchdog) clearInterval(this.watchdog)
    if (this.ackTimer) clearTimeout(this.ackTimer)
    if (this.sleeper) {
      clearTimeout(this.sleeper.timer)
      this.sleeper.wake()
    }
    const failed = [...this.pending.values()]
    this.pending.clear()
    for (const pending of failed) pending.fail(error)
    this.options.onEvent?.({ type: 'closed', ...(error.message ? { error } : {}) })
    const ws = this.ws
    if (ws && ws.readyState !== WebSocket.OPEN && ws.readyState !== WebSocket.CLOSED) ws.terminate()
  }
}
