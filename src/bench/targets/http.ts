import { UserError } from '../../shared/errors.js'
import type { RequestPlan } from '../types.js'
import { parseBaseUrl } from './endpoint.js'
import { readInputFile, readJsonFile } from './read-input.js'
import type { TargetOptions } from './target-options.js'

/** A request captured earlier (for example from a browser's "copy as fetch", reshaped). */
export interface RecordedRequest {
  method?: string
  url?: string
  path?: string
  headers?: Record<string, string>
  body?: unknown
}

/** Any URL with an optional body: --url, --method, --header, --body (text or @file), or --recorded. */
export async function httpPlan(options: TargetOptions, auth: Record<string, string>): Promise<RequestPlan> {
  const recorded = options.recorded ? await readJsonFile<RecordedRequest>(options.recorded, 'recorded') : {}
  const target =
    recorded.url ?? (recorded.path ? new URL(recorded.path, options.url).toString() : options.url)
  const { origin, pathAndQuery } = parseBaseUrl(target)
  const body = options.body !== undefined ? await bodyFlag(options.body) : recordedBody(recorded.body)
  const method = (options.method ?? recorded.method ?? (body ? 'POST' : 'GET')).toUpperCase()
  if (body && (method === 'GET' || method === 'HEAD')) {
    throw new UserError('BENCH_BAD_FLAG', `A ${method} request cannot carry a body`, {
      hint: 'Use --method POST (or PUT) with --body.',
    })
  }
  const recordedHeaders = Object.fromEntries(
    Object.entries(recorded.headers ?? {}).map(([k, v]) => [k.toLowerCase(), String(v)]),
  )
  const contentType: Record<string, string> =
    body && !recordedHeaders['content-type']
      ? { 'content-type': looksJson(body) ? 'application/json' : 'text/plain' }
      : {}
  return {
    origin,
    path: pathAndQuery,
    method,
    headers: { ...contentType, ...recordedHeaders, ...auth, ...options.headers },
    ...(body ? { body } : {}),
    stream: 'none',
    ...(options.tls ? { tls: options.tls } : {}),
  }
}

async function bodyFlag(value: string): Promise<Buffer> {
  return value.startsWith('@') ? readInputFile(value.slice(1), 'body') : Buffer.from(value, 'utf8')
}

function recordedBody(body: unknown): Buffer | undefined {
  if (body === undefined || body === null) return undefined
  return Buffer.from(typeof body === 'string' ? body : JSON.stringify(body), 'utf8')
}

function looksJson(body: Buffer): boolean {
  const first = body.toString('utf8', 0, Math.min(body.length, 64)).trimStart()[0]
  return first === '{' || first === '['
}
