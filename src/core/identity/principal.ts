/** Who is calling, once a credential has been checked. Never holds the credential itself. */
export interface Principal {
  kind: 'user' | 'apikey'
  /** The user acting (the key's owner for API keys; absent for service keys). */
  userId?: string
  role?: 'user' | 'admin'
  scopes: string[]
  /** API key id (usage, quotas and limits follow it across rotations). */
  keyId?: string
  /** Per-model restriction of an API key (null: every model its scopes allow). */
  models?: string[] | null
  /** Per-key requests/minute (null: the server default). */
  rateLimitPerMin?: number | null
  quota?: { requests: number | null; items: number | null; period: 'day' | 'month' } | null
  /** Access token id and refresh family, for logout. */
  jti?: string
  sessionId?: string
  tokenExpiresAt?: Date
}

/** What audit entries record as the actor. */
export function actorOf(principal: Principal | undefined): { actorUserId: string | null; actor: string } {
  if (!principal) return { actorUserId: null, actor: 'anonymous' }
  if (principal.kind === 'apikey')
    return { actorUserId: principal.userId ?? null, actor: `apikey:${principal.keyId}` }
  return { actorUserId: principal.userId ?? null, actor: `user:${principal.userId}` }
}
