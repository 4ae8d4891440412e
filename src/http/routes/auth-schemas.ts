import { Type } from '@sinclair/typebox'

import {
  CreateKeyInput,
  Email,
  ForgotInput,
  KeyIdInput,
  ListKeysInput,
  LoginInput,
  LogoutInput,
  OpaqueToken,
  Password,
  RefreshInput,
  RegisterInput,
  ResetInput,
  RotateInput,
  UpdateProfileInput,
  VerifyInput,
} from '../../core/identity/auth-inputs.js'

/**
 * TypeBox schemas of the /auth routes; the OpenAPI document is generated from them. Request bodies
 * are the identity layer's inputs (core/identity/auth-inputs.ts), which the gRPC face checks too.
 */
export { Email, OpaqueToken, Password }

export const PublicUserSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  email: Type.String(),
  display_name: Type.Union([Type.String(), Type.Null()]),
  role: Type.Union([Type.Literal('user'), Type.Literal('admin')]),
  email_verified: Type.Boolean(),
  disabled: Type.Boolean(),
  created_at: Type.String({ format: 'date-time' }),
})

export const RegisterBody = RegisterInput
const Advice = Type.Optional(
  Type.String({ description: 'Set when the password was accepted but a longer one is recommended.' }),
)
/** 201: registration answers explicitly (mail.smtp_url unset), so the new account is shown. */
export const RegisterResponse = Type.Object({
  status: Type.Literal('created'),
  user: PublicUserSchema,
  advice: Advice,
})
/** 202: with mail configured, the one answer for a new address and a taken one alike. */
export const RegisterPending = Type.Object(
  {
    status: Type.Literal('pending_verification'),
    message: Type.String(),
    advice: Advice,
  },
  {
    description:
      'The same for an address that is new (the account is created and a verification mail sent) and one that is taken (its owner is mailed; nothing changes).',
  },
)

export const LoginBody = LoginInput
export const TokenResponseSchema = Type.Object({
  access_token: Type.String(),
  refresh_token: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the access token expires.' }),
})
export const RefreshBody = RefreshInput
export const LogoutBody = Type.Union([LogoutInput, Type.Null()])
export const ChangePasswordBody = Type.Object(
  { current_password: Password, new_password: Password },
  { additionalProperties: false },
)
export const ForgotBody = ForgotInput
export const ResetBody = ResetInput
export const VerifyBody = VerifyInput
export const VerifyQuery = Type.Object({ token: OpaqueToken })
export const Accepted = Type.Object({ message: Type.String() })
export const Done = Type.Object({}, { additionalProperties: true })

export const UpdateMeBody = UpdateProfileInput
export const DeleteMeBody = Type.Object(
  { password: Type.Optional(Password) },
  { additionalProperties: false },
)

export const Jwks = Type.Object({ keys: Type.Array(Type.Object({}, { additionalProperties: true })) })

const Nullable = <T extends ReturnType<typeof Type.String> | ReturnType<typeof Type.Integer>>(t: T) =>
  Type.Union([t, Type.Null()])
export const KeyIdParams = KeyIdInput

export const CreateKeyBody = CreateKeyInput

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
export const ListKeysQuery = ListKeysInput
export const RotateBody = Type.Union([RotateInput, Type.Null()])
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
