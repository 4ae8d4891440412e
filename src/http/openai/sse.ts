import { PassThrough } from 'node:stream'
import type { FastifyReply } from 'fastify'

/** Headers of every event stream: nginx and other proxies must pass each event on at once. */
export const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
} as const

/**
 * A server-sent event stream of `data:` events on a Fastify reply (the body is a stream Fastify pipes
 * to the socket, so the reply's hooks, headers and metrics still run). Writes wait while the socket
 * is full; once the client has gone, `gone` is true and writes answer false, so the caller stops
 * generating.
 */
export class EventStream {
  private readonly body = new PassThrough()
  private clientGone = false
  private readonly waiters = new Set<() => void>()

  constructor(private readonly reply: FastifyReply) {
    const left = () => {
      if (this.reply.raw.writableFinished || this.body.writableEnded) return
      this.clientGone = true
      for (const wake of this.waiters) wake()
      this.waiters.clear()
    }
    reply.raw.once('close', left)
    this.body.once('close', left)
  }

  /** Whether the client went away before the stream ended. */
  get gone(): boolean {
    return this.clientGone
  }

  /** Sends the status and headers; the events follow. */
  open(headers: Record<string, string> = {}): void {
    this.reply.code(200).headers({ ...SSE_HEADERS, ...headers })
    void this.reply.send(this.body)
  }

  /** One `data:` event (an object as JSON, a string as it is); false once the client has gone. */
  async send(data: unknown): Promise<boolean> {
    if (this.clientGone) return false
    const text = typeof data === 'string' ? data : JSON.stringify(data)
    if (!this.body.write(`data: ${text}\n\n`)) await this.drained()
    return !this.clientGone
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        this.body.removeListener('drain', wake)
        this.waiters.delete(wake)
        resolve()
      }
      this.waiters.add(wake)
      this.body.once('drain', wake)
    })
  }

  /** Ends the stream (after `data: [DONE]`, or after an error event, which OpenAI's clients throw). */
  end(): void {
    if (!this.body.writableEnded) this.body.end()
  }
}
