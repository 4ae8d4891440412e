import { forbidden } from './auth-errors.js'
import type { Principal } from './principal.js'
import { allows, type ScopeRequirement } from './scopes.js'

/** Whether an API key's model list (none: every model) lets it call `model`. */
export function modelAllowed(principal: Principal, model: string | undefined): boolean {
  if (!principal.models || principal.models.length === 0) return true
  return model !== undefined && principal.models.includes(model)
}

/**
 * Whether a principal meets a requirement. A key's model list narrows inference, and with it the
 * metadata reads that inference grants; models:read itself still reads every model.
 */
export function permitted(principal: Principal, need: ScopeRequirement): boolean {
  if (!allows(principal.scopes, need)) return false
  if (need.model === undefined) return true
  const throughInfer = need.scope === 'infer' || !allows(principal.scopes, { scope: need.scope })
  return !throughInfer || modelAllowed(principal, need.model)
}

/** What a refusal says: the scope missing, and the model when one was named. */
export function lacking(need: ScopeRequirement): string {
  if (need.model === undefined) return `This credential lacks the ${need.scope} scope.`
  return need.scope === 'infer'
    ? `This credential lacks the infer scope for model ${need.model}.`
    : `This credential lacks the ${need.scope} scope, and may not call model ${need.model}.`
}

/** Throws FORBIDDEN unless the principal meets the requirement. */
export function requireAccess(principal: Principal, need: ScopeRequirement): void {
  if (!permitted(principal, need)) throw forbidden(lacking(need))
}

/** Batch rows of an inference request: the first input's leading dimension (1 for a single row). */
export function rowsOf(shapes: readonly (readonly number[])[]): number {
  const shape = shapes[0]
  if (!shape) return 0
  return shape.length > 1 && typeof shape[0] === 'number' ? shape[0] : 1
}

/** helix.yaml's auth.public_routes: `pattern` with a trailing * matches any suffix; otherwise the path must be equal. */
export function matchesPublicPattern(path: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.endsWith('*') ? path.startsWith(p.slice(0, -1)) : path === p))
}
