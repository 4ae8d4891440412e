import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { UserError } from '../../shared/errors.js'
import { BodyPool, readBody } from '../kserve/read-body.js'

export const HEADER_LENGTH = 'inference-header-content-length'

/** A body kept as bytes: a binary-extension infer request (JSON header + raw tensors) or octet-stream. */
export class RawBody {
  constructor(
    readonly bytes: Buffer,
    /** Bytes of the JSON header (Inference-Header-Content-Length); the whole body when absent. */
    readonly headerLength: number,
    /** Where `bytes` came from: give them back once nothing refers to them any more. */
    readonly pool?: BodyPool,
  ) {}

  /** Hands the memory back for the next request; the caller promises nothing reads it after this. */
  release(): void {
    this.pool?.give(this.bytes)
  }
}

function headerLength(request: FastifyRequest): number | undefined {
  const value = request.headers[HEADER_LENGTH]
  if (value === undefined) return undefined
  const length = Number(value)
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new UserError(
      'INVALID_INPUT',
      `${HEADER_LENGTH} must be a non-negative integer, got '${String(value)}'.`,
    )
  }
  return length
}

function contentLength(request: FastifyRequest): number | undefined {
  const value = request.headers['content-length']
  return value === undefined ? undefined : Number(value)
}

export function malformedJson(err: unknown): UserError {
  return new UserError('MALFORMED_JSON', `Malformed JSON body: ${(err as Error).message}`, {
    hint: 'Send a valid JSON document (Content-Type: application/json).',
  })
}

/** JSON.parse, refusing the keys that enable prototype poisoning (what Fastify's own parser refuses). */
export function parseJson(text: string): unknown {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw malformedJson(err)
  }
  if (text.includes('"__proto__"') || text.includes('"constructor"')) {
    JSON.parse(text, (key, v) => {
      if (key === '__proto__' || (key === 'constructor' && v && typeof v === 'object' && 'prototype' in v)) {
        throw new UserError('MALFORMED_JSON', `Forbidden key '${key}' in JSON body.`)
      }
      return v
    })
  }
  return value
}

/**
 * Body parsers: JSON (empty body allowed, read as absent), and raw bytes for application/octet-stream
 * or any body that announces a binary-extension header, read with the body limit and aligned so
 * tensor views need no copy.
 */
export const bodyParsersPlugin = fp(
  async (app: FastifyInstance, options: { bodyLimit: number }) => {
    const limit = options.bodyLimit
    // Binary-extension bodies are reused across requests (they are released by the infer route).
    const pool = new BodyPool()
    const readRaw = async (request: FastifyRequest, payload: NodeJS.ReadableStream) => {
      const jsonLength = headerLength(request)
      const bytes = await readBody(payload as never, {
        contentLength: contentLength(request),
        limit,
        alignAt: jsonLength,
        pool,
      })
      if (jsonLength !== undefined && jsonLength > bytes.length) {
        throw new UserError(
          'INVALID_INPUT',
          `${HEADER_LENGTH} is ${jsonLength} but the body has only ${bytes.length} bytes.`,
        )
      }
      return new RawBody(bytes, jsonLength ?? bytes.length, pool)
    }
    app.removeAllContentTypeParsers()
    app.addContentTypeParser(
      'application/json',
      async (request: FastifyRequest, payload: NodeJS.ReadableStream) => {
        if (request.headers[HEADER_LENGTH] !== undefined) return readRaw(request, payload)
        const bytes = await readBody(payload as never, { contentLength: contentLength(request), limit })
        return bytes.length === 0 ? undefined : parseJson(bytes.toString('utf8'))
      },
    )
    app.addContentTypeParser('application/octet-stream', readRaw)
    app.addContentTypeParser('*', async (request: FastifyRequest, payload: NodeJS.ReadableStream) => {
      if (request.headers[HEADER_LENGTH] !== undefined) return readRaw(request, payload)
      throw new UserError(
        'UNSUPPORTED_MEDIA_TYPE',
        `Unsupported Content-Type '${request.headers['content-type'] ?? ''}'.`,
        {
          hint: 'Send application/json, or the binary extension with Inference-Header-Content-Length.',
        },
      )
    })
  },
  { name: 'helix-body-parsers', fastify: '5.x' },
)
