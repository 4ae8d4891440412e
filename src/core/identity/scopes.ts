import { UserError } from '../../shared/errors.js'

/**
 * Scopes of API keys and access tokens. `infer` runs any model, `infer:<model>` only that model, and
 * either also reads the metadata and readiness of the models it may run; `models:read` reads every
 * model's metadata and the repository index; `models:admin` loads and unloads models (and implies
 * models:read); `monitor` reads what the daemon knows about itself (helix.monitoring.v1: health, GPUs,
 * model and server statistics, alerts, the caller's own usage), never changing anything; `metrics`
 * reads GET /metrics (the Prometheus series name API key ids, so a scraper gets only this scope);
 * `admin` is everything (monitor and metrics included), including users and keys of other people.
 */
export const BASE_SCOPES = ['infer', 'models:read', 'models:admin', 'monitor', 'metrics', 'admin'] as const
export type BaseScope = (typeof BASE_SCOPES)[number]

/** Model names as the repository allows them (directory names). */
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/

/** What a route asks for: a base scope and, for inference and model metadata, the model concerned. */
export interface ScopeRequirement {
  scope: BaseScope
  model?: string
}

function isBaseScope(text: string): text is BaseScope {
  return (BASE_SCOPES as readonly string[]).includes(text)
}

/** Validates and de-duplicates a scope list; throws a UserError naming the first bad scope. */
export function parseScopes(input: readonly string[]): string[] {
  const out = new Set<string>()
  for (const raw of input.flatMap((s) => s.split(/[\s,]+/))) {
    const scope = raw.trim()
    if (scope === '') continue
    const restricted = scope.startsWith('infer:') ? scope.slice('infer:'.length) : undefined
    if (!isBaseScope(scope) && !(restricted !== undefined && MODEL_NAME.test(restricted))) {
      throw new UserError('SCOPE_INVALID', `Unknown scope "${scope}".`, {
        hint: `Use ${BASE_SCOPES.join(', ')} or infer:<model>.`,
      })
    }
    out.add(scope)
  }
  if (out.size === 0) {
    throw new UserError('SCOPE_INVALID', 'At least one scope is required.', {
      hint: `Use one of ${BASE_SCOPES.join(', ')}.`,
    })
  }
  return [...out].sort()
}

/** Whether the granted scopes satisfy a requirement. */
export function allows(granted: readonly string[], need: ScopeRequirement): boolean {
  if (granted.includes('admin')) return true
  switch (need.scope) {
    case 'infer':
      return (
        granted.includes('infer') || (need.model !== undefined && granted.includes(`infer:${need.model}`))
      )
    case 'models:read':
      return (
        granted.includes('models:read') ||
        granted.includes('models:admin') ||
        // KServe and Triton clients read a model's metadata (and readiness) before they call it.
        (need.model !== undefined && allows(granted, { scope: 'infer', model: need.model }))
      )
    default:
      return granted.includes(need.scope)
  }
}

/** Scopes a signed-in user gets in access tokens: admins everything, others inference and reading. */
export function userScopes(role: string): string[] {
  return role === 'admin' ? ['admin'] : ['infer', 'models:read']
}

/** A subset check used when a user creates a key: nobody hands out more than they hold. */
export function canGrant(holder: readonly string[], wanted: readonly string[]): boolean {
  return wanted.every((scope) => {
    if (scope.startsWith('infer:'))
      return allows(holder, { scope: 'infer', model: scope.slice('infer:'.length) })
    return allows(holder, { scope: scope as BaseScope })
  })
}
