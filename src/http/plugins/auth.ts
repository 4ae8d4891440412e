import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { lacking, modelAllowed, permitted, rowsOf } from '../../core/identity/access.js'
import { forbidden, missingCredentials } from '../../core/identity/auth-errors.js'
import { authenticateCredential, bearerCredential } from '../../core/identity/authenticator.js'
import type { IdentityDeps } from '../../core/identity/identity-deps.js'
import type { Principal } from '../../core/identity/principal.js'
import { allows, type ScopeRequirement } from '../../core/identity/scopes.js'
import type { UsageRecorder } from '../../core/identity/usage-recorder.js'
import * as repos from '../../state/db/repositories/index.js'
import type { SocketAuth } from '../auth/socket-auth.js'
import { parseModelRef } from '../openai/model-ref.js'
import { type RouteAccess, routeAccess } from '../route-access.js'
import type { HttpRateLimits } from './rate-limit.js'

/**
 * Decides whether a request may proceed; throws a HelixError (UNAUTHENTICATED/FORBIDDEN/RATE_LIMITED)
 * when not.
 */
export type Authenticate = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

/**
 * The REST face of an identity layer (httpAuthentication in http/identity.ts): the hook, and the
 * account routes and plugins that come with it, registered before the daemon's routes so the OpenAPI
 * document and CORS see them all.
 */
export interface HttpAuth {
  authenticate: Authenticate
  routes?: FastifyPluginAsync
  /** The same checks for GET /v1/realtime, whose credential comes in the first frame. */
  socket?: SocketAuth
}

declare module 'fastify' {
  interface FastifyInstance {
    authenticate: Authenticate
    /** Routes registered without `config.access` (they need the admin scope); the daemon's has none. */
    undeclaredRoutes: string[]
  }
  interface FastifyRequest {
    /** Set by the auth hook when the request carried a valid credential. */
    principal?: Principal
  }
}

/** No identity configured (unit tests of the routes): every caller may proceed. */
export const allowAll: Authenticate = async () => {}

/**
 * The one place authentication hooks in: a single onRequest hook calling `app.authenticate`, which the
 * identity layer provides through buildApp's `auth` option (http/identity.ts).
 */
export const authPlugin = fp(
  async (app: FastifyInstance, options: { auth?: HttpAuth }) => {
    const authenticate = options.auth?.authenticate ?? allowAll
    app.decorate('authenticate', authenticate)
    app.decorate('undeclaredRoutes', [] as string[])
    app.addHook('onRoute', (route) => {
      if (route.config?.access) return
      // CORS preflights carry no credentials by design.
      if (route.method === 'OPTIONS') route.config = { ...route.config, access: 'public' }
      else app.undeclaredRoutes.push(`${route.method} ${route.url}`)
    })
    if (options.auth?.routes) await app.register(options.auth.routes)
    app.addHook('onRequest', async (request, reply) => app.authenticate(request, reply))
  },
  { name: 'helix-auth', fastify: '5.x' },
)

const REALM = 'Bearer realm="helix"'
const accessOf = new WeakMap<FastifyRequest, RouteAccess>()

function pathOf(request: FastifyRequest): string {
  const q = request.url.indexOf('?')
  return q === -1 ? request.url : request.url.slice(0, q)
}

/** Batch rows of a request: the first input's leading dimension (KServe) or the input list (OpenAI). */
export function itemsOf(body: unknown): number {
  if (!body || typeof body !== 'object') return 0
  const b = body as { inputs?: Array<{ shape?: unknown }>; input?: unknown }
  const shape = b.inputs?.[0]?.shape
  if (Array.isArray(shape)) return rowsOf([shape as number[]])
  if (Array.isArray(b.input)) return b.input.length
  return b.input === undefined ? 0 : 1
}

/** Whether the scopes grant `scope` for at least one model (infer:<model> counts for infer). */
function scopeForSomeModel(scopes: readonly string[], scope: ScopeRequirement['scope']): boolean {
  return allows(scopes, { scope }) || (scope === 'infer' && scopes.some((s) => s.startsWith('infer:')))
}

/** The repository model a request concerns: the :model parameter or the body's "model" (`name[:version]`). */
function requestModel(params: { model?: string }, body: unknown): string | null {
  const named = params.model ?? (body as { model?: unknown } | undefined)?.model
  return typeof named === 'string' ? parseModelRef(named).name : null
}

/**
 * The authentication hook of the daemon: per-IP limits on every request; on protected routes a Bearer
 * API key or access JWT (401 with WWW-Authenticate when missing or bad), the key's limits and quota
 * (429), then the route's scope (403).
 */
export function identityHooks(deps: IdentityDeps, guard: HttpRateLimits, recorder: UsageRecorder) {
  const publicRoutes = deps.config.auth.public_routes
  const enabled = deps.config.auth.enabled

  const authenticate: Authenticate = async (request, reply) => {
    // routeOptions builds a fresh object on every read: once per request is enough.
    const { url: route, config } = request.routeOptions
    await guard.byIp(request, reply, route)
    const access = routeAccess(
      config.access,
      route,
      pathOf(request),
      request.params as Record<string, string>,
      publicRoutes,
    )
    accessOf.set(request, access)
    if (access.kind === 'public' || (!enabled && access.kind === 'scope')) return
    const credential = bearerCredential(request.headers.authorization)
    if (credential === undefined) {
      reply.header('www-authenticate', REALM)
      throw missingCredentials()
    }
    let principal: Principal
    try {
      principal = await authenticateCredential(deps, credential)
    } catch (err) {
      reply.header('www-authenticate', `${REALM}, error="invalid_token"`)
      throw err
    }
    request.principal = principal
    await guard.byPrincipal(reply, principal)
    if (access.kind === 'scope') {
      const need = access.need
      // A model named in the body is checked once it is parsed (preHandler); a listing narrows itself.
      const some = access.modelFromBody || access.anyModel
      if (!(some ? scopeForSomeModel(principal.scopes, need.scope) : permitted(principal, need))) {
        reply.header('www-authenticate', `${REALM}, error="insufficient_scope", scope="${need.scope}"`)
        throw forbidden(lacking(need))
      }
    }
  }

  /** /v1 routes name the model in the body: check per-model restrictions and item quotas once it is parsed. */
  async function preHandler(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const principal = request.principal
    if (!principal) return
    const access = accessOf.get(request)
    const named = (request.body as { model?: unknown } | undefined)?.model
    // A specific version is named `name:version`; scopes and key model lists name the model.
    const model = typeof named === 'string' ? parseModelRef(named).name : undefined
    if (access?.kind === 'scope' && access.modelFromBody && model !== undefined) {
      if (!allows(principal.scopes, { scope: 'infer', model }) || !modelAllowed(principal, model)) {
        reply.header('www-authenticate', `${REALM}, error="insufficient_scope", scope="infer:${model}"`)
        throw forbidden(`This credential may not call model ${model}.`)
      }
    }
    if (access?.kind === 'scope' && access.need.scope === 'infer')
      await guard.byItems(principal, itemsOf(request.body))
  }

  /** Usage counters, last-used time and the request log (metadata only), after the answer is sent. */
  function onResponse(request: FastifyRequest, reply: FastifyReply, done: () => void): void {
    done()
    const principal = request.principal
    const route = request.routeOptions.url
    if (!principal || !route || !(route.startsWith('/v2') || route.startsWith('/v1'))) return
    const status = reply.statusCode
    const params = request.params as { model?: string; version?: string }
    recorder.recordRequest(principal, {
      requestId: String(request.id),
      method: request.method,
      route,
      model: requestModel(params, request.body),
      modelVersion: params.version ?? null,
      status,
      durationMs: reply.elapsedTime,
      items: itemsOf(request.body),
      ip: request.ip,
      userAgent: request.headers['user-agent'] ?? null,
    })
    if (status < 300 && /^\/v2\/repository\/models\/:model\/(load|unload)$/.test(route)) {
      repos.audit
        .recordAudit(deps.db, {
          action: route.endsWith('/load') ? 'model.load' : 'model.unload',
          actorUserId: principal.userId ?? null,
          actor: principal.keyId ? `apikey:${principal.keyId}` : `user:${principal.userId}`,
          target: `model:${params.model}`,
          ip: request.ip,
        })
        .catch((err: unknown) => deps.log?.error({ err }, 'writing the audit log failed'))
    }
  }

  return { authenticate, preHandler, onResponse }
}
