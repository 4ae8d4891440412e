import type { PublicUser } from '../../core/identity/accounts.js'
import type { ApiKeyInfo, CreatedKey } from '../../core/identity/api-keys.js'
import type { CreateKeyInput } from '../../core/identity/auth-inputs.js'
import type { Registration } from '../../core/identity/self-service.js'

/**
 * helix.auth.v1 messages as the handlers read and write them (proto-loader keeps the .proto's
 * snake_case names, the REST JSON's). proto3 sends no empty string, zero or empty message, so a
 * field that was not set reads as undefined; `optional` fields say whether they were set.
 */
export interface UserMessage {
  id: string
  email: string
  display_name?: string
  role: string
  email_verified: boolean
  disabled: boolean
  created_at: string
}

export interface ApiKeyMessage {
  id: string
  name: string
  user_id?: string
  prefix: string
  last4: string
  scopes: string[]
  rate_limit_per_min?: number
  quota_requests?: number
  quota_items?: number
  quota_period?: string
  expires_at?: string
  revoked_at?: string
  rotated_at?: string
  grace_until?: string
  last_used_at?: string
  created_at: string
}

export interface CreateApiKeyMessage {
  name?: string
  scopes?: string[]
  user_id?: string
  expires_at?: string
  rate_limit_per_min?: number
  /** int64 fields arrive as decimal strings (protos.ts). */
  quota_requests?: string
  quota_items?: string
  quota_period?: string
}

export interface ApiKeysRequestMessage {
  action?: 'create' | 'list' | 'rotate' | 'revoke'
  create?: CreateApiKeyMessage
  list?: { all?: boolean; include_revoked?: boolean }
  rotate?: { id?: string; grace_seconds?: number }
  revoke?: { id?: string }
}

/** A string proto3 could not tell from an unset one ("" is never sent) as absent. */
export function given(text: string | undefined): string | undefined {
  return text === undefined || text === '' ? undefined : text
}

const absentIfNull = <T>(value: T | null): T | undefined => (value === null ? undefined : value)

export function userMessage(user: PublicUser): UserMessage {
  return {
    id: user.id,
    email: user.email,
    ...(user.display_name !== null ? { display_name: user.display_name } : {}),
    role: user.role,
    email_verified: user.email_verified,
    disabled: user.disabled,
    created_at: user.created_at,
  }
}

export interface RegisterResponseMessage {
  user?: UserMessage
  advice?: string
  status: Registration['status']
  message?: string
}

/** REST's 201 and 202 bodies as one message: the user when created, the message when pending. */
export function registerMessage(registration: Registration): RegisterResponseMessage {
  const advice = registration.advice ? { advice: registration.advice } : {}
  return registration.status === 'created'
    ? { user: userMessage(registration.user), ...advice, status: registration.status }
    : { ...advice, status: registration.status, message: registration.message }
}

/** A key without its secret, which only ApiKeySecret carries. */
export function apiKeyMessage(info: ApiKeyInfo): ApiKeyMessage {
  return {
    id: info.id,
    name: info.name,
    user_id: absentIfNull(info.user_id),
    prefix: info.prefix,
    last4: info.last4,
    scopes: info.scopes,
    rate_limit_per_min: absentIfNull(info.rate_limit_per_min),
    quota_requests: absentIfNull(info.quota_requests),
    quota_items: absentIfNull(info.quota_items),
    quota_period: absentIfNull(info.quota_period),
    expires_at: absentIfNull(info.expires_at),
    revoked_at: absentIfNull(info.revoked_at),
    rotated_at: absentIfNull(info.rotated_at),
    grace_until: absentIfNull(info.grace_until),
    last_used_at: absentIfNull(info.last_used_at),
    created_at: info.created_at,
  }
}

export function apiKeySecretMessage(created: CreatedKey): { api_key: ApiKeyMessage; key: string } {
  return { api_key: apiKeyMessage(created), key: created.key }
}

/** A CreateApiKey message as the REST body would say it, for the same checks (auth-inputs.ts). */
export function createKeyInput(message: CreateApiKeyMessage): Partial<CreateKeyInput> {
  const number = (text: string | undefined) => (text === undefined ? undefined : Number(text))
  return {
    name: given(message.name),
    scopes: message.scopes ?? [],
    user_id: given(message.user_id),
    expires_at: given(message.expires_at),
    rate_limit_per_min: message.rate_limit_per_min,
    quota_requests: number(message.quota_requests),
    quota_items: number(message.quota_items),
    quota_period: given(message.quota_period) as CreateKeyInput['quota_period'],
  }
}
