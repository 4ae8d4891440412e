import type { CoreLogger } from '../logger.js'
import { prepareRequest } from './input-validation.js'
import { isReady, type ModelEntry, type ModelTable, type ReadySlot } from './model-table.js'
import { pickVersion } from './traffic.js'
import type { InferRequest } from './types.js'

/**
 * The version a request goes to: the one it names, else a weighted A/B pick (sticky by the
 * configured header or the caller's routing key) among the ready versions, else the default.
 */
export function routeRequest(table: ModelTable, entry: ModelEntry, request: InferRequest): ReadySlot {
  if (request.version !== undefined) return table.ready(entry, table.slot(entry, request.version))
  if (entry.traffic) {
    const ready = new Set(table.readySlots(entry).map((s) => s.version))
    const header = entry.stickyHeader ? request.headers?.[entry.stickyHeader.toLowerCase()] : undefined
    const key = (Array.isArray(header) ? header[0] : header) ?? request.routingKey
    const picked = pickVersion(entry.traffic, ready, key)
    if (picked) return table.ready(entry, table.slot(entry, picked))
  }
  return table.defaultSlot(entry)
}

/**
 * Sends a copy of an unversioned request to the model's shadow version; its answer and its errors
 * are only logged. Resolves once the copy is done with the request's inputs (at once when no copy
 * was sent), so their memory can be reused only then.
 */
export function shadowCopy(
  entry: ModelEntry,
  answered: string,
  request: InferRequest,
  logger: CoreLogger,
): Promise<void> | undefined {
  const shadow = entry.shadow ? entry.versions.get(entry.shadow) : undefined
  if (!shadow || shadow.version === answered || !isReady(shadow)) return undefined
  const { serving } = shadow
  const log = { model: entry.name, version: shadow.version }
  try {
    const prepared = prepareRequest(entry.name, serving.description, request, serving.batching)
    return serving.scheduler.enqueue(prepared, { timeoutMs: request.timeoutMs }).then(
      (r) => logger.debug({ ...log, timing: r.timing }, 'shadow answered'),
      (err: Error) => logger.debug({ ...log, err: err.message }, 'shadow failed'),
    )
  } catch (err) {
    logger.debug({ ...log, err: (err as Error).message }, 'shadow refused the input')
    return undefined
  }
}
