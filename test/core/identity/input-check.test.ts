import type { TSchema } from '@sinclair/typebox'
import Fastify, { type FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  CreateKeyInput,
  KeyIdInput,
  LoginInput,
  LogoutInput,
  RegisterInput,
  RotateInput,
  UpdateProfileInput,
} from '../../../src/core/identity/auth-inputs.js'
import { checkInput } from '../../../src/core/identity/input-check.js'
import { errorsPlugin } from '../../../src/http/plugins/errors.js'

const SCHEMAS: Record<string, TSchema> = {
  register: RegisterInput,
  login: LoginInput,
  logout: LogoutInput,
  profile: UpdateProfileInput,
  key: CreateKeyInput,
  id: KeyIdInput,
  rotate: RotateInput,
}

/** What checkInput says, or undefined when it accepts. */
function ours(schema: TSchema, value: unknown): string | undefined {
  try {
    checkInput(schema, value, 'body')
    return undefined
  } catch (err) {
    expect(err).toMatchObject({ code: 'INVALID_INPUT', kind: 'invalid_input' })
    return (err as Error).message
  }
}

const KEY = { name: 'ci', scopes: ['infer'] }

/** [schema, body]: each is checked by Fastify's validator (as the REST routes are) and by checkInput. */
const CASES: Array<[keyof typeof SCHEMAS, unknown]> = [
  ['register', { email: 'ada@example.test', password: 'correct horse battery staple' }],
  ['register', {}],
  ['register', { password: 'x' }],
  ['register', { email: 'ab', password: 'x' }],
  ['register', { email: `${'a'.repeat(320)}@x`, password: 'x' }],
  ['register', { email: 'ada@example.test', password: '' }],
  ['register', { email: 'ada@example.test', password: '😀'.repeat(512) }],
  ['register', { email: 'ada@example.test', password: '😀'.repeat(513) }],
  ['register', { email: 'ada@example.test', password: 'x', display_name: 'd'.repeat(201) }],
  ['register', { email: 'ada@example.test', password: 'x', display_name: 'd'.repeat(200) }],
  ['login', { email: 'ada@example.test' }],
  ['login', []],
  ['logout', {}],
  ['logout', { refresh_token: '' }],
  ['logout', { refresh_token: 't'.repeat(257) }],
  ['profile', {}],
  ['profile', { display_name: null }],
  ['profile', { display_name: 'd'.repeat(201) }],
  ['profile', { email: 'x' }],
  ['key', KEY],
  ['key', { name: 'ci' }],
  ['key', { name: '', scopes: ['infer'] }],
  ['key', { name: 'ci', scopes: [] }],
  ['key', { name: 'ci', scopes: Array.from({ length: 51 }, () => 'infer') }],
  ['key', { ...KEY, user_id: 'nope' }],
  ['key', { ...KEY, user_id: '0b7a4d2e-1c3f-4e5a-9b8c-7d6e5f4a3b2c' }],
  ['key', { ...KEY, rate_limit_per_min: 0 }],
  ['key', { ...KEY, rate_limit_per_min: 1.5 }],
  ['key', { ...KEY, quota_items: 10, quota_period: 'week' }],
  ['key', { ...KEY, quota_period: 'month' }],
  ['key', { ...KEY, expires_at: '2030-01-01T00:00:00Z' }],
  ['key', { ...KEY, expires_at: '2030-01-01t10:00:00.123+02:00' }],
  ['key', { ...KEY, expires_at: '2030-01-01 10:00:00-0230' }],
  ['key', { ...KEY, expires_at: '2030-12-31T23:59:60Z' }],
  ['key', { ...KEY, expires_at: '2031-01-01T00:59:60+01:00' }],
  ['key', { ...KEY, expires_at: '2030-12-31T22:59:60Z' }],
  ['key', { ...KEY, expires_at: '2028-02-29T00:00:00Z' }],
  ['key', { ...KEY, expires_at: '2030-02-29T00:00:00Z' }],
  ['key', { ...KEY, expires_at: '2030-13-01T00:00:00Z' }],
  ['key', { ...KEY, expires_at: '2030-01-01T24:00:00Z' }],
  ['key', { ...KEY, expires_at: '2030-01-01T00:00:00' }],
  ['key', { ...KEY, expires_at: '2030-01-01T00:00:00+24:00' }],
  ['key', { ...KEY, expires_at: '2030-01-01' }],
  ['key', { ...KEY, expires_at: 'tomorrow' }],
  ['id', { id: '0B7A4D2E-1C3F-4E5A-9B8C-7D6E5F4A3B2C' }],
  ['id', { id: '0b7a4d2e' }],
  ['rotate', { grace_seconds: -1 }],
  ['rotate', { grace_seconds: 30 * 86_400 + 1 }],
  ['rotate', { grace_seconds: 0 }],
]

describe('checkInput: the REST validator’s verdicts and words for the identity inputs', () => {
  let app: FastifyInstance
  beforeAll(async () => {
    app = Fastify()
    await app.register(errorsPlugin)
    for (const [name, schema] of Object.entries(SCHEMAS)) {
      app.post(`/${name}`, { schema: { body: schema } }, async () => ({ ok: true }))
    }
    await app.ready()
  })
  afterAll(async () => app?.close())

  it.each(CASES.map(([name, body], i) => [i, name, body] as const))('case %i: %s', async (_i, name, body) => {
    const res = await app.inject({ method: 'POST', url: `/${name}`, payload: body as object })
    const rest = res.statusCode === 200 ? undefined : (res.json().error as string)
    if (rest !== undefined) expect(res.statusCode).toBe(400)
    expect(ours(SCHEMAS[name], body)).toBe(rest)
  })

  it('names the whole input as asked, and treats undefined properties as absent', () => {
    expect(() =>
      checkInput(LoginInput, { email: 'ada@example.test', password: undefined }, 'request'),
    ).toThrow("request must have required property 'password'")
    expect(() => checkInput(CreateKeyInput, { name: 'x', scopes: [] }, 'request/create')).toThrow(
      'request/create/scopes must NOT have fewer than 1 items',
    )
    expect(checkInput(UpdateProfileInput, { email: undefined, display_name: 'Ada' }, 'request')).toEqual({
      email: undefined,
      display_name: 'Ada',
    })
  })
})
