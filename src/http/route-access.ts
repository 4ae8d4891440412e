import type { ScopeRequirement } from '../core/identity/scopes.js'

/**
 * What a route needs: nothing (public), any valid credential (the caller's own account and keys),
 * or a scope. Decided from the route pattern, so a new route under /v2, /v1 or /admin is protected by
 * default.
 */
export type RouteAccess =
  | { kind: 'public' }
  | { kind: 'signed-in' }
  | { kind: 'scope'; need: ScopeRequirement; modelFromBody?: boolean }

/** Auth routes that must work without a credential (you cannot present one before you have one). */
const OPEN_AUTH_ROUTES = new Set([
  '/auth/register',
  '/auth/login',
  '/auth/refresh',
  '/auth/password/forgot',
  '/auth/password/reset',
  '/auth/email/verify',
])

/** Public unless configured otherwise: key discovery, the API description and Prometheus scraping. */
const OPEN_OPS_ROUTES = new Set([
  '/.well-known/jwks.json',
  '/openapi.json',
  '/docs',
  '/docs/explorer.js',
  '/metrics',
])

/** GET /v2/models/{m}[/versions/{v}] and …/ready. */
const MODEL_READ_ROUTE = /^\/v2\/models\/:model(\/versions\/:version)?(\/ready)?$/

/** `pattern` with a trailing * matches any suffix; otherwise the path must be equal. */
export function matchesPublicPattern(path: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => (p.endsWith('*') ? path.startsWith(p.slice(0, -1)) : path === p))
}

/**
 * @param route the matched route pattern (e.g. /v2/models/:model/infer), undefined for a 404
 * @param path the request path without query
 */
export function routeAccess(
  method: string,
  route: string | undefined,
  path: string,
  params: Record<string, string | undefined>,
  publicRoutes: readonly string[],
): RouteAccess {
  if (route === undefined) return { kind: 'public' } // the 404 handler answers; nothing to protect
  if (matchesPublicPattern(path, publicRoutes) || OPEN_AUTH_ROUTES.has(route) || OPEN_OPS_ROUTES.has(route)) {
    return { kind: 'public' }
  }
  if (route.startsWith('/auth/')) return { kind: 'signed-in' }
  if (route.startsWith('/admin')) return { kind: 'scope', need: { scope: 'admin' } }
  if (route.startsWith('/v2/repository/models/')) return { kind: 'scope', need: { scope: 'models:admin' } }
  // /infer and the streaming routes (WebSocket /stream, SSE /generate_stream) run the model.
  if (/\/(infer|stream|generate_stream)$/.test(route))
    return { kind: 'scope', need: { scope: 'infer', model: params.model } }
  if (route.startsWith('/v1/') && method === 'POST')
    return { kind: 'scope', need: { scope: 'infer' }, modelFromBody: true }
  // One model's metadata and readiness: readable with models:read, or by whoever may call that model.
  if (method === 'GET' && MODEL_READ_ROUTE.test(route))
    return { kind: 'scope', need: { scope: 'models:read', model: params.model } }
  if (route === '/v2' || route.startsWith('/v2/') || route.startsWith('/v1/')) {
    return { kind: 'scope', need: { scope: 'models:read' } }
  }
  return { kind: 'public' }
}
