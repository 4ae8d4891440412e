import { Type } from '@sinclair/typebox'

/** TypeBox schemas of the /auth routes; the OpenAPI document is generated from them. */
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

export const PublicUserSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String(),
  display_name: Type.Union([Type.String(), Type.Null()]),
  role: Type.Union([Type.Literal('user'), Type.Literal('admin')]),
  email_verified: Type.Boolean(),
  disabled: Type.Boolean(),
  created_at: Type.String({ format: 'date-time' }),
})

export const RegisterBody = Type.Object(
  { email: Email, password: Password, display_name: Type.Optional(Type.String({ maxLength: 200 })) },
  { additionalProperties: false },
)
export const RegisterResponse = Type.Object({ user: PublicUserSchema, advice: Type.Optional(Type.String()) })

export const LoginBody = Type.Object({ email: Email, password: Password }, { additionalProperties: false })
export const TokenResponseSchema = Type.Object({
  access_token: Type.String(),
  refresh_token: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the access token expires.' }),
})
export const RefreshBody = Type.Object({ refresh_token: OpaqueToken }, { additionalProperties: false })
export const LogoutBody = Type.Union([
  Type.Object({ refresh_token: Type.Optional(OpaqueToken) }, { additionalProperties: false }),
  Type.Null(),
])
export const ChangePasswordBody = Type.Object(
  { current_password: Password, new_password: Password },
  { additionalProperties: false },
)
export const ForgotBody = Type.Object({ email: Email }, { additionalProperties: false })
export const ResetBody = Type.Object(
  { token: OpaqueToken, password: Password },
  { additionalProperties: false },
)
export const VerifyBody = Type.Object({ token: OpaqueToken }, { additionalProperties: false })
export const VerifyQuery = Type.Object({ token: OpaqueToken })
export const Accepted = Type.Object({ message: Type.String() })
export const Done = Type.Object({}, { additionalProperties: true })

export const UpdateMeBody = Type.Object(
  {
    email: Type.Optional(Email),
    display_name: Type.Optional(Type.Union([Type.String({ maxLength: 200 }), Type.Null()])),
  },
  { additionalProperties: false, minProperties: 1 },
)
export const DeleteMeBody = Type.Object(
  { password: Type.Optional(Password) },
  { additionalProperties: false },
)

export const Jwks = Type.Object({ keys: Type.Array(Type.Object({}, { additionalProperties: true })) })

const Scope = Type.String({ description: 'infer, infer:<model>, models:read, models:admin or admin' })
const Nullable = <T extends ReturnType<typeof Type.String> | ReturnType<typeof Type.Integer>>(t: T) =>
  Type.Union([t, Type.Null()])
export const KeyIdParams = Type.Object({ id: Type.String({ format: 'uuid' }) })

export const CreateKeyBody = Type.Object(
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

export const ApiKeyInfoSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  user_id: Nullable(Type.String()),
  prefix: Type.String(),
  last4: Type.String(),
  scopes: Type.Array(Type.String()),
  rate_limit_per_min: Nullable(Type.Integer()),
  quota_requests: Nullable(Type.Integer()),
  quota_items: Nullable(Type.Integer()),
  quota_period: Type.Union([Type.Literal('day'), Type.Literal('month'), Type.Null()]),
  expires_at: Nullable(Type.String()),
  revoked_at: Nullable(Type.String()),
  rotated_at: Nullable(Type.String()),
  grace_until: Nullable(Type.String()),
  last_used_at: Nullable(Type.String()),
  created_at: Type.String(),
})
export const CreatedKeySchema = Type.Intersect([
  ApiKeyInfoSchema,
  Type.Object({ key: Type.String({ description: 'The secret: shown this once, store it now.' }) }),
])
export const ListKeysQuery = Type.Object({
  all: Type.Optional(Type.Boolean({ description: 'Administrators: keys of every user.' })),
  include_revoked: Type.Optional(Type.Boolean()),
})
export const RotateBody = Type.Union([
  Type.Object(
    { grace_seconds: Type.Optional(Type.Integer({ minimum: 0, maximum: 30 * 86_400 })) },
    { additionalProperties: false },
  ),
  Type.Null(),
])
export const UsageQuery = Type.Object({ since: Type.Optional(Type.String({ format: 'date-time' })) })
const Counters = {
  requests: Type.Number(),
  errors: Type.Number(),
  tokens: Type.Number(),
  items: Type.Number(),
}
export const UsageSchema = Type.Object({
  id: Type.String(),
  since: Type.String(),
  totals: Type.Object(Counters),
  hours: Type.Array(Type.Object({ hour: Type.String(), ...Counters })),
  quota: Type.Union([
    Type.Object({
      period: Type.String(),
      requests: Nullable(Type.Integer()),
      items: Nullable(Type.Integer()),
      used_requests: Type.Number(),
      used_items: Type.Number(),
    }),
    Type.Null(),
  ]),
  last_used_at: Nullable(Type.String()),
})
