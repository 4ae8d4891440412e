import type { Metadata } from '@grpc/grpc-js'
import { matchesPublicPattern, requireAccess } from '../core/identity/access.js'
import { missingCredentials } from '../core/identity/auth-errors.js'
import { authenticateCredential, bearerCredential } from '../core/identity/authenticator.js'
import type { Identity } from '../core/identity/identity.js'
import { actorOf, type Principal } from '../core/identity/principal.js'
import type { BaseScope, ScopeRequirement } from '../core/identity/scopes.js'
import { type RateLimitGuard, rateLimitGuard, refuseIfLimited } from '../core/limits/guard.js'
import { endWithError, startChildSpan } from '../core/tracing.js'
import { clientAddressResolver } from '../shared/trusted-proxies.js'
import * as repos from '../state/db/repositories/index.js'
import { callTraceContext } from './call-trace.js'

/**
 * What a gRPC method needs, declared next to its handler as REST routes declare `config.access`:
 * anyone, any valid credential, or a scope (with the model the call concerns).
 */
export type GrpcAccess =
  | 'public'
  | 'signed-in'
  | { scope: BaseScope; model?: string }
  /** A stream whose messages each name a model: the credential now, the scope per message (authorizeMessage). */
  | { scope: BaseScope; perMessage: true }

/** The parts of a call the checks read (unary, server-streaming and bidirectional calls all have them). */
export interface CallInfo {
  metadata: Metadata
  getPeer(): string
}

/** The client address of a peer string: "ipv4:1.2.3.4:5", "1.2.3.4:5", "[::1]:5", "ipv6:[::1]:5". */
export function peerAddress(peer: string): string {
  const text = peer.replace(/^ipv[46]:/, '')
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(text)
  if (bracketed) return bracketed[1]
  const colon = text.lastIndexOf(':')
  return colon > 0 && text.indexOf(':') === colon ? text.slice(0, colon) : text
}

/** One string value of a metadata key (gRPC metadata keys are lower-case). */
export function metadataValue(metadata: Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0]
  return value === undefined ? undefined : String(value)
}

/** Metadata as lower-case request headers, for what the core reads from headers (a model's sticky_header). */
export function metadataHeaders(metadata: Metadata): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries(metadata.getMap())) {
    if (typeof value === 'string') out[key] = value
  }
  return out
}

/** The gRPC face of the identity layer: the same credentials, limits, scopes, usage and audit as REST. */
export interface CallAuth {
  /**
   * The caller's address: the socket's peer, or behind a proxy in server.trust_proxy (nginx's
   * grpc_pass) the client its X-Forwarded-For metadata names, as REST's request.ip.
   */
  clientAddress(call: CallInfo): string
  /**
   * Per-IP limits, then (unless the access is public) the Bearer credential in the `authorization`
   * metadata, the key's limits and quota, and the scope. `restPath` is the call's REST twin, matched
   * against helix.yaml's auth.public_routes. Throws UNAUTHENTICATED, FORBIDDEN or RATE_LIMITED.
   */
  authorize(
    call: CallInfo,
    access: GrpcAccess,
    options?: { restPath?: string; credentialCall?: boolean },
  ): Promise<Principal | undefined>
  /**
   * One more inference on an already authorized stream: the key's limits and quota count every
   * message, and each names its own model.
   */
  authorizeMessage(principal: Principal | undefined, need: ScopeRequirement): Promise<void>
  /** An inference's rows against the key's items quota. */
  chargeItems(principal: Principal | undefined, items: number): Promise<void>
  /** Usage counters, last-used time and the request log (metadata only), once the call is answered. */
  record(entry: CallRecord): void
  /** An audit entry for an administrative call that succeeded. */
  audit(principal: Principal | undefined, action: string, target: string, ip: string): void
}

export interface CallRecord {
  principal: Principal | undefined
  /** Full method name, e.g. /inference.GRPCInferenceService/ModelInfer. */
  method: string
  model?: string
  version?: string
  /** The HTTP status that stands for the outcome (grpcHttpStatus), so REST and gRPC rows read alike. */
  status: number
  durationMs: number
  items: number
  ip: string
  userAgent?: string
  requestId: string
}

/** No identity (auth off, or a test of the service alone): every caller may proceed and nothing is recorded. */
export const openCallAuth: CallAuth = {
  clientAddress: (call) => peerAddress(call.getPeer()),
  authorize: async () => undefined,
  authorizeMessage: async () => {},
  chargeItems: async () => {},
  record: () => {},
  audit: () => {},
}

export function callAuth(identity: Identity): CallAuth {
  const { deps, recorder } = identity
  const config = deps.config
  const guard: RateLimitGuard = rateLimitGuard(identity.limiter, config)
  const enabled = config.auth.enabled
  const clientOf = clientAddressResolver(config.server.trust_proxy)
  const clientAddress = (call: CallInfo) =>
    clientOf(peerAddress(call.getPeer()), metadataValue(call.metadata, 'x-forwarded-for'))
  const authorizeCall: CallAuth['authorize'] = async (call, access, options = {}) => {
    const ip = clientAddress(call)
    refuseIfLimited(await guard.byIp(ip, options.credentialCall === true))
    if (access === 'public') return undefined
    if (options.restPath && matchesPublicPattern(options.restPath, config.auth.public_routes))
      return undefined
    if (!enabled && access !== 'signed-in') return undefined
    const credential = bearerCredential(metadataValue(call.metadata, 'authorization'))
    if (credential === undefined) throw missingCredentials()
    const principal = await authenticateCredential(deps, credential)
    refuseIfLimited(await guard.byPrincipal(principal))
    if (access !== 'signed-in' && !('perMessage' in access)) requireAccess(principal, access)
    return principal
  }

  return {
    clientAddress,

    async authorize(call, access, options = {}) {
      // An 'auth' child span of the call's span when tracing is on, as the REST face has.
      const parent = callTraceContext(call)
      const span = parent ? startChildSpan('auth', parent) : undefined
      try {
        const principal = await authorizeCall(call, access, options)
        span?.end()
        return principal
      } catch (err) {
        if (span) endWithError(span, err)
        throw err
      }
    },

    async authorizeMessage(principal, need) {
      if (!principal) return
      refuseIfLimited(await guard.byPrincipal(principal))
      requireAccess(principal, need)
    },

    async chargeItems(principal, items) {
      if (principal) await guard.byItems(principal, items)
    },

    record(entry) {
      recorder.recordRequest(entry.principal, {
        requestId: entry.requestId,
        method: 'GRPC',
        route: entry.method,
        model: entry.model ?? null,
        modelVersion: entry.version ?? null,
        status: entry.status,
        durationMs: entry.durationMs,
        items: entry.items,
        ip: entry.ip,
        userAgent: entry.userAgent ?? null,
      })
    },

    audit(principal, action, target, ip) {
      repos.audit
        .recordAudit(deps.db, { action, ...actorOf(principal), target, ip })
        .catch((err: unknown) => deps.log?.error({ err }, 'writing the audit log failed'))
    },
  }
}
