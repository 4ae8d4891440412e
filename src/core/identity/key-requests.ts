import type { KeyActor, NewKeyRequest } from './api-keys.js'
import type { CreateKeyInput, ListKeysInput } from './auth-inputs.js'

/** A create-key input (REST JSON names) as the key service takes it. */
export function newKeyRequest(input: CreateKeyInput): NewKeyRequest {
  return {
    name: input.name,
    scopes: input.scopes,
    ...(input.user_id !== undefined ? { userId: input.user_id } : {}),
    expiresAt: input.expires_at ? new Date(input.expires_at) : null,
    rateLimitPerMin: input.rate_limit_per_min ?? null,
    quotaRequests: input.quota_requests ?? null,
    quotaItems: input.quota_items ?? null,
    quotaPeriod: input.quota_period ?? null,
  }
}

/** Which keys a list shows: the caller's own, or every user's for an administrator who asks for all. */
export function listKeysFilter(
  actor: KeyActor,
  input: ListKeysInput,
): { userId?: string; includeRevoked: boolean } {
  return {
    ...(actor.admin && input.all ? {} : { userId: actor.userId ?? undefined }),
    includeRevoked: input.include_revoked ?? false,
  }
}
