import { performance } from 'node:perf_hooks'
import { Client, type Dispatcher } from 'undici'
import { Http1Lane, laneTarget } from './http1-lane.js'
import { parseServerTiming } from './server-timing.js'
import { SseTokenParser } from './sse-tokens.js'
import type { Sample } from './step-recorder.js'
import type { RequestPlan } from './types.js'

type Outcome = Omit<Sample, 'at'>

/**
 * Replays one prepared request over keep-alive connections (pipelining 1, as real clients use) and
 * turns each exchange into a Sample. Each connection is a "lane": a closed-loop user owns one, and an
 * open loop deals its arrivals round-robin over all of them, so `--connections` really holds that
 * many connections open. Plain request/response exchanges go through Http1Lane (one pre-serialised
 * write, a parser that skips bodies); streamed responses (SSE), whose tokens are timed, go through
 * undici Clients with a plain dispatch handler. Never throws: failures become error kinds.
 */
export class LoadClient {
  private dispatchers: Dispatcher[] = []
  private lanes: Http1Lane[] = []
  private readonly options: Dispatcher.DispatchOptions

  /** `lanes` connections, chosen per request by `send(from, lane)`. */
  constructor(
    private readonly plan: RequestPlan,
    lanes: number,
    timeoutMs: number,
  ) {
    const count = Math.max(1, lanes)
    if (plan.stream === 'none') {
      const target = laneTarget(plan, timeoutMs)
      this.lanes = Array.from({ length: count }, () => new Http1Lane(target))
    } else {
      const options = {
        pipelining: 1,
        keepAliveTimeout: 30_000,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        ...(plan.tls ? { connect: plan.tls } : {}),
      }
      this.dispatchers = Array.from({ length: count }, () => new Client(plan.origin, options))
    }
    this.options = {
      path: plan.path,
      method: plan.method as 'GET',
      headers: plan.headers,
      body:
        plan.body === undefined
          ? undefined
          : Buffer.from(plan.body.buffer, plan.body.byteOffset, plan.body.byteLength),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    }
  }

  /**
   * Sends the request once. Latency is measured from `from` (performance.now() time): the actual send
   * time in a closed loop, the intended send time in an open loop (coordinated-omission correction).
   */
  send(from: number, lane = 0): Promise<Outcome> {
    if (this.lanes.length > 0) {
      return new Promise((resolve) => {
        this.lanes[lane % this.lanes.length].send((status, serverTiming, error) => {
          const latencyMs = performance.now() - from
          resolve(
            error === undefined
              ? outcome(status, latencyMs, serverTiming, undefined, from)
              : { latencyMs, error },
          )
        })
      })
    }
    const sse = this.plan.stream === 'sse' ? new SseTokenParser() : undefined
    return new Promise((resolve) => {
      let status = 0
      let serverTiming: string | undefined
      this.dispatchers[lane % this.dispatchers.length].dispatch(this.options, {
        onConnect() {},
        onHeaders(statusCode: number, rawHeaders: Buffer[] | string[]) {
          status = statusCode
          for (let i = 0; i < rawHeaders.length; i += 2) {
            const name = rawHeaders[i]
            if (name.length === 13 && name.toString().toLowerCase() === 'server-timing')
              serverTiming = rawHeaders[i + 1].toString()
          }
          return true
        },
        onData(chunk: Buffer) {
          if (sse && status < 300) sse.push(chunk, performance.now())
          return true
        },
        onComplete() {
          const end = performance.now()
          resolve(outcome(status, end - from, serverTiming, sse?.finish(end), from))
        },
        onError(err: Error) {
          resolve({ latencyMs: performance.now() - from, error: errorKind(err) })
        },
      } as unknown as Dispatcher.DispatchHandler)
    })
  }

  async close(): Promise<void> {
    for (const lane of this.lanes) lane.close()
    await Promise.all(this.dispatchers.map((d) => d.destroy()))
  }
}

function outcome(
  status: number,
  latencyMs: number,
  serverTiming: string | undefined,
  tokens: number[] | undefined,
  from: number,
): Outcome {
  if (status < 200 || status >= 300) return { latencyMs, error: `status ${status}` }
  if (tokens) {
    if (tokens.length === 0) return { latencyMs, error: 'no tokens' }
    return { latencyMs, ttftMs: tokens[0] - from, interTokenMs: tokens.slice(1).map((t, i) => t - tokens[i]) }
  }
  if (serverTiming === undefined) return { latencyMs }
  const timing = parseServerTiming(serverTiming)
  return { latencyMs, queueMs: timing.queue, computeMs: timing.compute }
}

/** Groups transport failures into the kinds a user can act on. */
export function errorKind(err: unknown): string {
  const code = (err as { code?: string }).code
  if (
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT'
  )
    return 'timeout'
  if (code === 'UND_ERR_SOCKET') return 'socket closed'
  return code ?? (err as Error).name ?? 'error'
}
