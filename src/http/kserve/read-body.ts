import type { Readable } from 'node:stream'
import { UserError } from '../../shared/errors.js'

export interface ReadBodyOptions {
  /** Declared Content-Length, when the client sent one. */
  contentLength?: number
  /** Largest body accepted (config.server.body_limit). */
  limit: number
  /**
   * Byte offset inside the body that should land on an 8-byte boundary of the underlying memory: the
   * start of the binary tensor data, so typed-array views over it need no copy.
   */
  alignAt?: number
  /** Where to take the memory from (bodies of a known length); fresh memory without one. */
  pool?: BodyPool
}

/**
 * Memory of finished request bodies, by allocation size, for the next body of that size. A busy
 * model's binary-extension requests (110 KB each for PP-OCR cls) would otherwise each allocate a
 * fresh ArrayBuffer, and V8 answers that much external memory with a collection every few dozen
 * requests. Only bodies nothing refers to any more may be given back (see routes/infer.ts).
 * Bounded: at most `perSize` spares per size and `limitBytes` in all.
 */
export class BodyPool {
  private readonly spare = new Map<number, ArrayBuffer[]>()
  /** Memory handed out by take and not yet given back: nothing else may enter the pool. */
  private readonly issued = new WeakSet<ArrayBuffer>()
  private bytes = 0

  constructor(
    private readonly limitBytes = 64 * 1024 * 1024,
    private readonly perSize = 64,
  ) {}

  /** Allocation sizes are rounded up to 4 KiB so bodies of similar length share spares. */
  private static sizeFor(length: number): number {
    return Math.ceil(length / 4096) * 4096
  }

  /** At least `length` bytes (contents undefined), starting at the start of its ArrayBuffer. */
  take(length: number): Buffer {
    const size = BodyPool.sizeFor(length)
    const spare = this.spare.get(size)?.pop()
    if (spare) this.bytes -= size
    const body = spare ? Buffer.from(spare) : Buffer.allocUnsafeSlow(size)
    this.issued.add(body.buffer as ArrayBuffer)
    return body
  }

  /**
   * Returns a body's memory (any view of a buffer from take; anything else, e.g. a slice of Node's
   * shared Buffer pool, is ignored, as is a second give); dropped when the pool is full.
   */
  give(body: Uint8Array): void {
    const memory = body.buffer as ArrayBuffer
    if (!this.issued.has(memory)) return
    this.issued.delete(memory)
    const size = memory.byteLength
    const list = this.spare.get(size) ?? []
    if (list.length >= this.perSize || this.bytes + size > this.limitBytes) return
    list.push(memory)
    this.spare.set(size, list)
    this.bytes += size
  }

  get spareBytes(): number {
    return this.bytes
  }
}

export function bodyTooLarge(limit: number): UserError {
  return new UserError('BODY_TOO_LARGE', `Request body is larger than the ${limit}-byte limit.`, {
    hint: 'Send fewer or smaller tensors per request, or raise server.body_limit in helix.yaml.',
  })
}

/**
 * Reads a request body into one Buffer. With a Content-Length the buffer is allocated once and
 * chunks are copied straight into it at the alignment the binary tensor data needs.
 */
export function readBody(stream: Readable, options: ReadBodyOptions): Promise<Buffer> {
  const { contentLength, limit } = options
  return new Promise((resolve, reject) => {
    if (contentLength !== undefined && contentLength > limit) {
      stream.resume() // drain so the connection stays usable
      reject(bodyTooLarge(limit))
      return
    }
    let target: Buffer | undefined
    if (contentLength !== undefined) {
      const pad = (8 - ((options.alignAt ?? 0) % 8)) % 8
      const memory = options.pool
        ? options.pool.take(contentLength + pad)
        : Buffer.allocUnsafeSlow(contentLength + pad)
      target = memory.subarray(pad, pad + contentLength)
    }
    const chunks: Buffer[] = []
    let received = 0
    let failed = false
    const fail = (err: Error) => {
      if (failed) return
      failed = true
      stream.removeListener('data', onData)
      stream.resume()
      reject(err)
    }
    const onData = (chunk: Buffer) => {
      if (received + chunk.length > (target ? target.length : limit)) {
        fail(
          target
            ? new UserError('INVALID_INPUT', 'Request body is longer than its Content-Length.')
            : bodyTooLarge(limit),
        )
        return
      }
      if (target) chunk.copy(target, received)
      else chunks.push(chunk)
      received += chunk.length
    }
    stream.on('data', onData)
    stream.once('error', fail)
    stream.once('end', () => {
      if (failed) return
      if (!target) resolve(Buffer.concat(chunks, received))
      else if (received === target.length) resolve(target)
      else reject(new UserError('INVALID_INPUT', 'Request body is shorter than its Content-Length.'))
    })
  })
}
