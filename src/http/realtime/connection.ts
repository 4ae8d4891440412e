import { performance } from 'node:perf_hooks'
import type { RawData, WebSocket } from 'ws'
import type { Principal } from '../../core/identity/principal.js'
import type { ModelService } from '../../core/infer/types.js'
import type { CoreLogger } from '../../core/logger.js'
import type { HelixMetrics } from '../../core/metrics.js'
import type { HelixError } from '../../shared/errors.js'
import {
  type ClientFrame,
  REALTIME_CLOSE,
  type RequestFrame,
  type ResumeFrame,
  type SessionFrame,
} from '../../shared/realtime-protocol.js'
import { principalKey, type SocketAuth } from '../auth/socket-auth.js'
import { parseModelRef } from '../openai/model-ref.js'
import { errorAnswer } from '../plugins/errors.js'
import { embeddingInputs, runEmbeddings } from './embeddings-request.js'
import { parseClientFrame } from './frame-parser.js'
import { FrameWriter, outFrame } from './frame-writer.js'
import { runGenerate } from './generate-request.js'
import { inferItems, runInfer } from './infer-request.js'
import type { PrincipalSockets } from './principal-sockets.js'
import { invalidFrame, resumeGap, sessionNotFound } from './realtime-errors.js'
import { cancelledError, type RequestContext, type RequestOutcome } from './request-context.js'
import type { ResumeStore } from './resume-store.js'
import { RealtimeSession, type RequestStream } from './session.js'
import type { RealtimeSettings } from './settings.js'

/** What every connection of one daemon shares. */
export interface RealtimeContext {
  settings: RealtimeSettings
  auth: SocketAuth
  store: ResumeStore
  sockets: PrincipalSockets
  service: ModelService
  metrics: HelixMetrics
  log: CoreLogger
}

/** The HTTP upgrade request, as far as a connection needs it. */
export interface UpgradeInfo {
  ip: string
  headers: Record<string, string | string[] | undefined>
}

type CloseReason =
  /** The client closed cleanly (1000, 1001): it wants nothing more of the session. */
  | 'client'
  /** The connection broke (1006, or any other code from the client): the session waits for a resume. */
  | 'dropped'
  | 'unauthenticated'
  | 'revoked'
  | 'expired'
  | 'slow_consumer'
  | 'heartbeat'
  | 'taken_over'
  | 'too_many'

/** Frames a client may send while its auth frame is being checked (a pipelining client). */
const MAX_FRAMES_DURING_AUTH = 256
/** A peer that does not read cannot take a close frame either: it is cut off after this long. */
const CLOSE_TIMEOUT_MS = 2000
/** setTimeout's longest delay (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1

const RUNNERS: {
  [T in RequestFrame['type']]: (frame: never, context: RequestContext) => Promise<RequestOutcome>
} = {
  infer: runInfer,
  embeddings: runEmbeddings,
  generate: runGenerate,
}

function itemsOf(frame: RequestFrame): number {
  if (frame.type === 'infer') return inferItems(frame)
  if (frame.type === 'embeddings') return embeddingInputs(frame.input).length
  return 0
}

/** RFC 6455 §5.5: a close frame's reason is at most 123 bytes of UTF-8. */
export function closeReasonText(reason: string): string {
  if (Buffer.byteLength(reason) <= 123) return reason
  let cut = reason.slice(0, 120)
  while (Buffer.byteLength(`${cut}…`) > 123) cut = cut.slice(0, -1)
  return `${cut}…`
}

function bytesOf(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
}

/**
 * One WebSocket on /v1/realtime: the auth frame first (within authTimeoutMs), then a session whose
 * requests run concurrently; pings every heartbeatMs, credential checks every credentialCheckMs and at
 * an access token's expiry, and backpressure through its FrameWriter. When the socket goes away the
 * session is handed to the resume store (or destroyed on a clean close or a revoked credential).
 */
export class RealtimeConnection {
  private state: 'unauthenticated' | 'authenticating' | 'open' | 'closing' | 'closed' = 'unauthenticated'
  private readonly writer: FrameWriter
  private readonly waiting: { data: RawData; isBinary: boolean }[] = []
  private principal: Principal | undefined
  private token: string | undefined
  private owner: string | undefined
  private counted = false
  private session: RealtimeSession | undefined
  private resumed = false
  private alive = true
  private closeReason: CloseReason | undefined
  /** A credential check is under way (a slow database must not stack them up). */
  private checking = false
  /** A revoked credential ends its session: nothing of it waits for a resume. */
  private endSession = false
  private readonly timers: NodeJS.Timeout[] = []

  constructor(
    private readonly ws: WebSocket,
    private readonly upgrade: UpgradeInfo,
    private readonly context: RealtimeContext,
  ) {
    const { settings, metrics } = context
    this.writer = new FrameWriter(
      {
        get bufferedAmount() {
          return ws.bufferedAmount
        },
        send: (text, done) => ws.send(text, done),
      },
      {
        highWaterBytes: settings.sendHighWaterBytes,
        // A resume replays up to the whole resume buffer at once.
        maxQueueBytes: Math.max(settings.maxSendQueueBytes, settings.resumeBufferBytes),
      },
      () => this.slowConsumer(),
    )
    metrics.realtimeConnections.inc()
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary))
    ws.on('pong', () => {
      this.alive = true
    })
    ws.on('close', (code) => this.onClose(code))
    ws.on('error', (err) => context.log.debug({ err }, 'realtime socket error'))
    this.later(settings.authTimeoutMs, () => {
      if (this.state === 'unauthenticated' || this.state === 'authenticating')
        this.close(REALTIME_CLOSE.unauthenticated, 'authentication timed out', 'unauthenticated')
    })
    this.every(settings.heartbeatMs, () => this.beat())
  }

  private later(ms: number, run: () => void): NodeJS.Timeout {
    const timer = setTimeout(run, Math.min(ms, MAX_TIMER_MS))
    timer.unref()
    this.timers.push(timer)
    return timer
  }

  private every(ms: number, run: () => void): void {
    const timer = setInterval(run, ms)
    timer.unref()
    this.timers.push(timer)
  }

  private send(frame: Record<string, unknown>): void {
    this.context.metrics.realtimeFrames.inc({ direction: 'out', type: String(frame.type) })
    this.writer.push(outFrame(JSON.stringify(frame)))
  }

  /** A refused frame: an error without seq (no request started). */
  private refuse(error: HelixError | unknown, id?: string): void {
    const answer = errorAnswer(error)
    this.send({
      type: 'error',
      ...(id !== undefined ? { id } : {}),
      code: answer.code,
      message: answer.message,
      status: answer.status,
      ...(answer.retryAfter !== undefined ? { retry_after: answer.retryAfter } : {}),
    })
  }

  private close(code: number, reason: string, why: CloseReason): void {
    if (this.state === 'closing' || this.state === 'closed') return
    this.state = 'closing'
    this.closeReason = why
    this.ws.close(code, closeReasonText(reason))
    this.later(CLOSE_TIMEOUT_MS, () => this.ws.terminate())
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    this.alive = true
    if (this.state === 'closing' || this.state === 'closed') return
    if (this.state === 'authenticating') {
      if (this.waiting.length >= MAX_FRAMES_DURING_AUTH)
        this.close(REALTIME_CLOSE.tooMany, 'too many frames before authentication', 'too_many')
      else this.waiting.push({ data, isBinary })
      return
    }
    const parsed = parseClientFrame(bytesOf(data), isBinary)
    this.context.metrics.realtimeFrames.inc({
      direction: 'in',
      type: parsed.ok ? parsed.frame.type : 'invalid',
    })
    if (this.state === 'unauthenticated') {
      if (parsed.ok && parsed.frame.type === 'auth')
        this.authenticate(parsed.frame.token).catch((err: unknown) => this.failed(err))
      else
        this.close(
          REALTIME_CLOSE.unauthenticated,
          'the first frame must be {"type":"auth","token":"<API key or access token>"}',
          'unauthenticated',
        )
      return
    }
    if (!parsed.ok) this.refuse(parsed.error, parsed.id)
    else this.dispatch(parsed.frame)
  }

  private async authenticate(token: string | undefined): Promise<void> {
    this.state = 'authenticating'
    const { auth, settings, store, sockets, metrics } = this.context
    let principal: Principal | undefined
    try {
      principal = await auth.authenticate(token)
    } catch (err) {
      const answer = errorAnswer(err)
      if (answer.status === 401) this.close(REALTIME_CLOSE.unauthenticated, answer.message, 'unauthenticated')
      else {
        this.context.log.error({ err }, 'realtime authentication failed')
        this.close(1011, 'authentication is unavailable', 'unauthenticated')
      }
      return
    }
    if (this.state !== 'authenticating') return
    const owner = principalKey(principal)
    if (auth.required) {
      if (!sockets.acquire(owner)) {
        this.close(
          REALTIME_CLOSE.tooMany,
          `too many sockets for this credential (realtime.max_sockets_per_principal is ${settings.maxSocketsPerPrincipal})`,
          'too_many',
        )
        return
      }
      this.counted = true
    }
    this.principal = principal
    this.token = token
    this.owner = owner
    const { session, token: resumeToken } = store.create(
      (id) =>
        new RealtimeSession(
          id,
          owner,
          { resumeBufferBytes: settings.resumeBufferBytes, maxRequests: settings.maxRequestsPerSocket },
          (type) => metrics.realtimeFrames.inc({ direction: 'out', type }),
        ),
    )
    this.adopt(session)
    this.state = 'open'
    const frame: SessionFrame = {
      type: 'session',
      session_id: session.id,
      resume_token: resumeToken,
      heartbeat_ms: settings.heartbeatMs,
      resume_grace_ms: settings.resumeGraceMs,
      max_requests: settings.maxRequestsPerSocket,
      max_message_bytes: settings.maxMessageBytes,
    }
    this.send({ ...frame })
    this.watchCredential()
    for (const { data, isBinary } of this.waiting.splice(0)) this.onMessage(data, isBinary)
  }

  private adopt(session: RealtimeSession): void {
    this.session = session
    session.attach(this.writer, () =>
      this.close(REALTIME_CLOSE.sessionTaken, 'the session was resumed on another connection', 'taken_over'),
    )
  }

  /** Checks the credential every credentialCheckMs and when an access token expires. */
  private watchCredential(): void {
    const { principal, token } = this
    if (!this.context.auth.required || !principal || !token) return
    this.every(this.context.settings.credentialCheckMs, () => void this.recheck())
    const expiresAt = principal.tokenExpiresAt?.getTime()
    if (expiresAt !== undefined)
      this.later(Math.max(0, expiresAt - Date.now()) + 50, () => void this.recheck())
  }

  private async recheck(): Promise<void> {
    const { principal, token } = this
    if (this.state !== 'open' || !principal || !token || this.checking) return
    let verdict: Awaited<ReturnType<SocketAuth['recheck']>>
    this.checking = true
    try {
      verdict = await this.context.auth.recheck(token, principal)
    } catch (err) {
      this.context.log.warn({ err }, 'checking a realtime credential failed; checking again later')
      return
    } finally {
      this.checking = false
    }
    if (verdict === 'valid') return
    // A revoked credential's requests stop now; an expired one's wait for a resume with a fresh token.
    this.endSession = verdict === 'revoked'
    this.close(REALTIME_CLOSE.unauthenticated, `credential ${verdict}`, verdict)
  }

  private beat(): void {
    if (this.state === 'closed') return
    if (!this.alive) {
      this.closeReason = 'heartbeat'
      this.ws.terminate()
      return
    }
    this.alive = false
    this.ws.ping()
  }

  private slowConsumer(): void {
    // The session waits for a resume from here on, its frames kept; this socket is done.
    const session = this.session
    if (session?.detach(this.writer)) this.context.store.detached(session)
    this.close(REALTIME_CLOSE.slowConsumer, 'slow consumer: too many unread frames', 'slow_consumer')
  }

  private onClose(code: number): void {
    if (this.state === 'closed') return
    const { metrics, store, sockets } = this.context
    this.state = 'closed'
    this.closeReason ??=
      code === REALTIME_CLOSE.normal || code === REALTIME_CLOSE.goingAway ? 'client' : 'dropped'
    for (const timer of this.timers) clearTimeout(timer)
    this.writer.stop()
    metrics.realtimeConnections.dec()
    metrics.realtimeCloses.inc({ reason: this.closeReason })
    if (this.counted && this.owner !== undefined) sockets.release(this.owner)
    const session = this.session
    if (!session?.detach(this.writer)) return
    if (this.endSession || this.closeReason === 'client') store.remove(session)
    else store.detached(session)
  }

  private dispatch(frame: ClientFrame): void {
    const session = this.session as RealtimeSession
    switch (frame.type) {
      case 'auth':
        this.refuse(invalidFrame('This socket is already authenticated.'))
        return
      case 'resume':
        this.resume(frame)
        return
      case 'ping':
        this.send({ type: 'pong', ...(frame.data !== undefined ? { data: frame.data } : {}) })
        return
      case 'ack':
        session.ack(frame.id, frame.seq)
        return
      case 'cancel':
        session.cancel(frame.id)
        return
      default:
        this.start(frame)
    }
  }

  private resume(frame: ResumeFrame): void {
    const { store, metrics } = this.context
    const fresh = this.session as RealtimeSession
    if (this.resumed || fresh.size > 0) {
      this.refuse(invalidFrame('A resume must be the first frame after auth, before any request.'))
      return
    }
    const claimed = store.claim(frame.session_id, frame.resume_token, this.owner as string)
    if (!claimed) {
      metrics.realtimeResumes.inc({ outcome: 'refused' })
      this.refuse(sessionNotFound())
      return
    }
    metrics.realtimeResumes.inc({ outcome: 'resumed' })
    this.resumed = true
    store.remove(fresh)
    const session = claimed.session
    const lastSeq = frame.last_seq ?? {}
    const unknown = Object.keys(lastSeq).filter((id) => !session.knows(id))
    this.adopt(session)
    this.send({ type: 'resumed', session_id: session.id, resume_token: claimed.token, unknown })
    const { lost } = session.replay(lastSeq)
    for (const id of lost) this.refuse(resumeGap(id), id)
  }

  private start(named: RequestFrame): void {
    const session = this.session as RealtimeSession
    // `model` may name a version as the /v1 routes take it (qwen:2); an explicit `version` wins.
    const ref = named.version === undefined ? parseModelRef(named.model) : { name: named.model }
    const frame = {
      ...named,
      model: ref.name,
      ...(ref.version !== undefined ? { version: ref.version } : {}),
    }
    let stream: RequestStream
    try {
      stream = session.open(frame.id, frame.type)
    } catch (err) {
      this.refuse(err, frame.id)
      return
    }
    this.run(frame, session, stream).catch((err: unknown) => this.failed(err))
  }

  /** A bug, not a request's failure (those become error frames): logged, and the socket closed. */
  private failed(err: unknown): void {
    this.context.log.error({ err }, 'realtime connection failed')
    this.close(1011, 'internal error', 'dropped')
  }

  private async run(frame: RequestFrame, session: RealtimeSession, stream: RequestStream): Promise<void> {
    const { auth, service, metrics, log } = this.context
    const { principal } = this
    const started = performance.now()
    const items = itemsOf(frame)
    let outcome: RequestOutcome | undefined
    let status = 200
    try {
      await auth.admit(principal, frame.model, items)
      if (stream.cancel.aborted) throw cancelledError(stream)
      const context: RequestContext = {
        service,
        metrics,
        session,
        stream,
        principal,
        headers: this.upgrade.headers,
      }
      outcome = await RUNNERS[frame.type](frame as never, context)
    } catch (err) {
      const answer = errorAnswer(err)
      status = answer.status
      if (status >= 500 && answer.code !== 'CANCELLED')
        log.error({ err, request: frame.id }, 'realtime request failed')
      session.emit(stream, 'error', {
        code: answer.code,
        message: answer.message,
        status,
        ...(answer.retryAfter !== undefined ? { retry_after: answer.retryAfter } : {}),
      })
    }
    const userAgent = this.upgrade.headers['user-agent']
    auth.record({
      principal,
      type: frame.type,
      requestId: `${session.id}/${frame.id}`,
      model: outcome?.model ?? frame.model,
      ...(outcome?.version !== undefined ? { version: outcome.version } : {}),
      status,
      durationMs: performance.now() - started,
      items: outcome?.items ?? items,
      ...(outcome?.tokens !== undefined ? { tokens: outcome.tokens } : {}),
      ip: this.upgrade.ip,
      ...(typeof userAgent === 'string' ? { userAgent } : {}),
    })
  }
}
