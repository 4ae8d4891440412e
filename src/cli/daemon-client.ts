import type { ModelIndexEntry } from '../core/infer/types.js'
import { Failure, UserError } from '../shared/errors.js'

/**
 * The few daemon calls the `helix models` commands make (KServe v2 repository extension), over
 * plain fetch. Errors carry the daemon's own `{"error": …}` message.
 */
async function post(
  url: string,
  path: string,
  body: unknown,
  headers: Record<string, string>,
): Promise<unknown> {
  const target = `${url.replace(/\/+$/, '')}${path}`
  let response: Response
  try {
    response = await fetch(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(120_000),
    })
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause
    throw new Failure(
      'DAEMON_UNREACHABLE',
      `Cannot reach the helix daemon at ${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}.`,
      {
        hint: 'Start it with `helix serve`, or pass the right address with --url.',
        cause: err,
      },
    )
  }
  const text = await response.text()
  let parsed: unknown
  try {
    parsed = text === '' ? {} : JSON.parse(text)
  } catch {
    parsed = { error: text.slice(0, 200) }
  }
  if (!response.ok) {
    const message = (parsed as { error?: unknown }).error
    const said =
      typeof message === 'string'
        ? message
        : typeof message === 'object' && message
          ? JSON.stringify(message)
          : `HTTP ${response.status}`
    const ErrorClass = response.status >= 400 && response.status < 500 ? UserError : Failure
    throw new ErrorClass('DAEMON_REFUSED', `The daemon at ${url} answered ${response.status}: ${said}`, {
      hint:
        response.status === 404
          ? 'Check the model name with `helix models list`.'
          : 'See the daemon log for details.',
      details: { status: response.status },
    })
  }
  return parsed
}

export type DaemonAction = 'load' | 'unload'

/** POST /v2/repository/models/{model}/load|unload. */
export async function modelControl(
  url: string,
  model: string,
  action: DaemonAction,
  headers: Record<string, string> = {},
): Promise<void> {
  await post(url, `/v2/repository/models/${encodeURIComponent(model)}/${action}`, {}, headers)
}

/** POST /v2/repository/index. */
export async function repositoryIndex(
  url: string,
  headers: Record<string, string> = {},
): Promise<ModelIndexEntry[]> {
  const rows = await post(url, '/v2/repository/index', {}, headers)
  if (!Array.isArray(rows))
    throw new Failure('DAEMON_REFUSED', `The daemon at ${url} sent an unexpected repository index.`)
  return rows.map(fromWireIndexRow)
}

/** The wire format is snake_case (KServe style); the CLI shows the same rows as a local listing. */
export function fromWireIndexRow(row: Record<string, unknown>): ModelIndexEntry {
  const { execution_provider, fallback_reason, queue_depth, queue_capacity, ...rest } = row
  return {
    ...rest,
    ...(execution_provider !== undefined ? { executionProvider: execution_provider } : {}),
    ...(fallback_reason !== undefined ? { fallbackReason: fallback_reason } : {}),
    ...(queue_depth !== undefined ? { queueDepth: queue_depth } : {}),
    ...(queue_capacity !== undefined ? { queueCapacity: queue_capacity } : {}),
  } as unknown as ModelIndexEntry
}

/** Request headers carrying an API key, when one is given. */
export function authorization(apiKey: string | undefined): Record<string, string> {
  return apiKey ? { authorization: `Bearer ${apiKey}` } : {}
}
