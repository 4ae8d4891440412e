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
      target = Buffer.allocUnsafeSlow(contentLength + pad).subarray(pad)
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
