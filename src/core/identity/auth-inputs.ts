import { type Static, Type } from '@sinclair/typebox'

/**
 * What callers send to the account, session and API key services, as the REST JSON names it
 * (snake_case). The REST routes validate bodies against these schemas and the OpenAPI document is
 * generated from them; the gRPC face checks its messages against the same schemas (input-check.ts),
 * so both faces accept and refuse the same input.
 */
export const Email = Type.String({
  minLength: 3,
  maxLength: 320,
  description: 'E-mail address (case-insensitive).',
})
/** 128 characters may be 4 bytes each in UTF-8; the policy counts characters, this bounds bytes. */
export const Password = Type.String({
  minLength: 1,
  maxLength: 512,
  description: '8–128 characters, no composition rules.',
})
export const OpaqueToken = Type.String({ minLength: 1, maxLength: 256 })
export const DisplayName = Type.String({ maxLength: 200 })

export const RegisterInput = Type.Object(
  { email: Email, password: Password, display_name: Type.Optional(DisplayName) },
  { additionalProperties: false },
)
export type RegisterInput = Static<typeof RegisterInput>

export const LoginInput = Type.Object({ email: Email, password: Password }, { additionalProperties: false })
export type LoginInput = Static<typeof LoginInput>

export const RefreshInput = Type.Object({ refresh_token: OpaqueToken }, { additionalProperties: false })
export type RefreshInput = Static<typeof RefreshInput>

/** Logout names the session to end by its refresh token; without one, the presenting session ends. */
export const LogoutInput = Type.Object(
  { refresh_token: Type.Optional(OpaqueToken) },
  { additionalProperties: false },
)
export type LogoutInput = Static<typeof LogoutInput>

export const ForgotInput = Type.Object({ email: Email }, { additionalProperties: false })
export type ForgotInput = Static<typeof ForgotInput>

export const ResetInput = Type.Object(
  { token: OpaqueToken, password: Password },
  { additionalProperties: false },
)
export type ResetInput = Static<typeof ResetInput>

export const VerifyInput = Type.Object({ token: OpaqueToken }, { additionalProperties: false })
export type VerifyInput = Static<typeof VerifyInput>

export const UpdateProfileInput = Type.Object(
  {
    email: Type.Optional(Email),
    display_name: Type.Optional(Type.Union([DisplayName, Type.Null()])),
  },
  { additionalProperties: false, minProperties: 1 },
)
export type UpdateProfileInput = Static<typeof UpdateProfileInput>

const Scope = Type.String({
  description: 'infer, infer:<model>, models:read, models:admin, monitor or admin',
})

export const CreateKeyInput = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    scopes: Type.Array(Scope, { minItems: 1, maxItems: 50 }),
    user_id: Type.Optional(Type.String({ format: 'uuid', description: 'Owner (administrators only).' })),
    expires_at: Type.Optional(Type.String({ format: 'date-time' })),
    rate_limit_per_min: Type.Optional(Type.Integer({ minimum: 1 })),
    quota_requests: Type.Optional(Type.Integer({ minimum: 1 })),
    quota_items: Type.Optional(Type.Integer({ minimum: 1 })),
    quota_period: Type.Optional(Type.Union([Type.Literal('day'), Type.Literal('month')])),
  },
  { additionalProperties: false },
)
export type CreateKeyInput = Static<typeof CreateKeyInput>

export const KeyIdInput = Type.Object({ id: Type.String({ format: 'uuid' }) })
export type KeyIdInput = Static<typeof KeyIdInput>

export const ListKeysInput = Type.Object({
  all: Type.Optional(Type.Boolean({ description: 'Administrators: keys of every user.' })),
  include_revoked: Type.Optional(Type.Boolean()),
})
export type ListKeysInput = Static<typeof ListKeysInput>

/** 30 days: the longest an old secret keeps working after a rotation. */
export const MAX_GRACE_SECONDS = 30 * 86_400

export const RotateInput = Type.Object(
  { grace_seconds: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_GRACE_SECONDS })) },
  { additionalProperties: false },
)
export type RotateInput = Static<typeof RotateInput>
