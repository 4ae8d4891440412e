import { matchesPublicPattern } from '../core/identity/access.js'
import type { BaseScope, ScopeRequirement } from '../core/identity/scopes.js'

/**
 * What a route needs, declared on the route itself as `config: { access }`:
 * - 'public': anyone (signing in, key discovery, the API description, scraping);
 * - 'signed-in': any valid credential (the caller's own account and keys);
 * - a scope, with the model it concerns taken from the :model parameter or from the JSON body's
 *   "model" (OpenAI-style routes, checked once the body is parsed), or 'any': the scope for at least
 *   one model (a listing the route narrows to the models the credential may use).
 */
export type Access = 'public' | 'signed-in' | { scope: BaseScope; model?: 'param' | 'body' | 'any' }

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: Access
  }
}

/** A route that declares nothing gets the strictest requirement: a forgotten declaration locks, never opens. */
export const UNDECLARED: Access = { scope: 'admin' }

/** The requirement of one request, resolved from its route's declaration. */
export type RouteAccess =
  | { kind: 'public' }
  | { kind: 'signed-in' }
  | { kind: 'scope'; need: ScopeRequirement; modelFromBody?: boolean; anyModel?: boolean }

/**
 * @param declared the route's `config.access`
 * @param route the matched route pattern (e.g. /v2/models/:model/infer), undefined for a 404
 * @param path the request path without query, for helix.yaml's auth.public_routes
 */
export function routeAccess(
  declared: Access | undefined,
  route: string | undefined,
  path: string,
  params: Record<string, string | undefined>,
  publicRoutes: readonly string[],
): RouteAccess {
  if (route === undefined) return { kind: 'public' } // the 404 handler answers; nothing to protect
  if (matchesPublicPattern(path, publicRoutes)) return { kind: 'public' }
  const access = declared ?? UNDECLARED
  if (access === 'public' || access === 'signed-in') return { kind: access }
  if (access.model === 'body') return { kind: 'scope', need: { scope: access.scope }, modelFromBody: true }
  if (access.model === 'any') return { kind: 'scope', need: { scope: access.scope }, anyModel: true }
  return {
    kind: 'scope',
    need: { scope: access.scope, ...(access.model === 'param' ? { model: params.model } : {}) },
  }
}
