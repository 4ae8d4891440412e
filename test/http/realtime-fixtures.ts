import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import WebSocket from 'ws'
import { createModelService, type HelixModelService } from '../../src/core/infer/model-service.js'
import { HelixMetrics } from '../../src/core/metrics.js'
import { type BuildAppOptions, buildApp } from '../../src/http/app.js'
import type { RealtimeSettings } from '../../src/http/realtime/settings.js'
import type { ServerFrame } from '../../src/shared/realtime-protocol.js'

/** A daemon app listening on 127.0.0.1:0 over a model service, and its /v1/realtime URL. */
export interface RealtimeDaemon {
  app: FastifyInstance
  service: HelixModelService
  metrics: HelixMetrics
  repositoryDir: string
  /** ws://127.0.0.1:<port>/v1/realtime */
  url: string
  close(): Promise<void>
}

export async function startRealtimeDaemon(
  options: {
    /** Fills the model repository before the service starts. */
    repository?: (dir: string) => Promise<void>
    /** A repository directory made elsewhere (the identity harness's). */
    repositoryDir?: string
    realtime?: Partial<RealtimeSettings>
  } & Partial<BuildAppOptions> = {},
): Promise<RealtimeDaemon> {
  const root = options.repositoryDir ? undefined : await mkdtemp(join(tmpdir(), 'helix-rt-'))
  const models = options.repositoryDir ?? join(root as string, 'models')
  await options.repository?.(models)
  const service = await createModelService({ repositoryDir: models, defaultDevice: 'cpu' })
  const metrics = new HelixMetrics(service, { defaultMetrics: false })
  const { repository: _r, repositoryDir: _d, ...rest } = options
  const app = await buildApp({ ...rest, service, metrics })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  return {
    app,
    service,
    metrics,
    repositoryDir: models,
    url: `ws://127.0.0.1:${port}/v1/realtime`,
    close: async () => {
      await app.close()
      await service.close()
      if (root) await rm(root, { recursive: true, force: true })
    },
  }
}

type AnyFrame = ServerFrame & Record<string, unknown>

/** A raw protocol client for the tests: every frame received, waits on frames and on the close. */
export class RawSocket {
  readonly frames: AnyFrame[] = []
  readonly closed: Promise<{ code: number; reason: string }>
  private waiters: { match: (f: AnyFrame) => boolean; resolve: (f: AnyFrame) => void; seen: number }[] = []

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as AnyFrame
      this.frames.push(frame)
      for (const waiter of [...this.waiters]) {
        if (waiter.match(frame)) {
          this.waiters.splice(this.waiters.indexOf(waiter), 1)
          waiter.resolve(frame)
        }
      }
    })
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }))
    })
    ws.on('error', () => {})
  }

  static async open(url: string, options: WebSocket.ClientOptions = {}): Promise<RawSocket> {
    const ws = new WebSocket(url, options)
    const socket = new RawSocket(ws)
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      ws.once('error', reject)
    })
    return socket
  }

  /** Opens a socket and authenticates it; resolves with the session frame. */
  static async session(url: string, token?: string, options: WebSocket.ClientOptions = {}) {
    const socket = await RawSocket.open(url, options)
    socket.send({ type: 'auth', ...(token !== undefined ? { token } : {}) })
    const session = await socket.next((f) => f.type === 'session')
    return { socket, session: session as AnyFrame & { session_id: string; resume_token: string } }
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  /** The first frame (already received or to come) matching `match`. */
  next(match: (f: AnyFrame) => boolean, timeoutMs = 10_000): Promise<AnyFrame> {
    const have = this.frames.find(match)
    if (have) return Promise.resolve(have)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(`no matching frame in ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`),
          ),
        timeoutMs,
      )
      this.waiters.push({
        match,
        resolve: (f) => {
          clearTimeout(timer)
          resolve(f)
        },
        seen: this.frames.length,
      })
    })
  }

  /** The last frame of request `id` (result, done or error with a seq). */
  end(id: string, timeoutMs?: number): Promise<AnyFrame> {
    return this.next(
      (f) =>
        f.id === id &&
        (f.type === 'result' || f.type === 'done' || (f.type === 'error' && f.seq !== undefined)),
      timeoutMs,
    )
  }

  of(id: string): AnyFrame[] {
    return this.frames.filter((f) => f.id === id)
  }

  close(): void {
    this.ws.close(1000)
  }
}

/** The add model's infer frame: a + b over FP32 [rows, 4]. */
export function addFrame(id: string, a: number[], b: number[], model = 'add') {
  return {
    type: 'infer',
    id,
    model,
    inputs: [
      { name: 'a', datatype: 'FP32', shape: [a.length / 4, 4], data: a },
      { name: 'b', datatype: 'FP32', shape: [b.length / 4, 4], data: b },
    ],
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls until `check` holds (or fails after timeoutMs). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await sleep(20)
  }
}
