import { type ServiceError, status } from '@grpc/grpc-js'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createAccount } from '../../src/core/identity/accounts.js'
import { CLI_ACTOR, createKey } from '../../src/core/identity/api-keys.js'
import { listOutbox } from '../../src/core/identity/mail/outbox-mailer.js'
import type { CoreLogger } from '../../src/core/logger.js'
import { bearer, daemon, identitySuite } from '../core/identity/identity-harness.js'
import { bytesOf, client, floatsOf, type TestClient, type TestGrpc, testGrpc } from './fixtures.js'

const PASSWORD = 'correct horse battery staple'
const SERVICE = 'helix.auth.v1.AuthService'
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/

interface Tokens {
  access_token: string
  refresh_token: string
  token_type: string
  expires_in: number
}

interface ApiKey {
  id: string
  name: string
  user_id?: string
  prefix: string
  last4: string
  scopes: string[]
  rate_limit_per_min?: number
  quota_requests?: string
  quota_period?: string
  revoked_at?: string
  grace_until?: string
  created_at: string
}

/**
 * A decoded message without the names of proto3 `optional` fields' synthetic oneofs ("_display_name"),
 * which proto-loader adds with `oneofs: true`.
 */
function fields<T extends object>(message: T): T {
  return Object.fromEntries(Object.entries(message).filter(([key]) => !key.startsWith('_'))) as T
}

/** Every line the gRPC face logs, for the "no secret in any log line" check. */
function capturingLogger(lines: string[]): CoreLogger {
  const write = (...args: unknown[]) => {
    lines.push(JSON.stringify(args, (_k, v) => (v instanceof Error ? { ...v, message: v.message } : v)))
  }
  return { debug: write, info: write, warn: write, error: write }
}

/** A served ModelInfer request for the repository's `add` model. */
const ADD_REQUEST = {
  model_name: 'add',
  inputs: [
    { name: 'a', datatype: 'FP32', shape: [1, 4] },
    { name: 'b', datatype: 'FP32', shape: [1, 4] },
  ],
  raw_input_contents: [bytesOf(new Float32Array([1, 2, 3, 4])), bytesOf(new Float32Array([10, 20, 30, 40]))],
}

/** Single-use tokens are mailed as one indented line (mail/auth-mail.ts). */
async function mailedToken(db: Parameters<typeof listOutbox>[0], to: string, subject: RegExp) {
  return vi.waitFor(
    async () => {
      const mail = (await listOutbox(db, { to })).find((m) => subject.test(m.subject))
      if (!mail) throw new Error(`no mail to ${to} yet`)
      return /^ {2}([A-Za-z0-9_-]{40,})$/m.exec(mail.body)![1]
    },
    { timeout: 5000, interval: 50 },
  )
}

describe('helix.auth.v1.AuthService against a real identity layer and PostgreSQL', () => {
  const suite = identitySuite()
  const logLines: string[] = []
  /** Every secret the tests see, none of which may reach a log line. */
  const secrets: string[] = [PASSWORD]
  let g: TestGrpc
  let anonymous: TestClient
  const clients: TestClient[] = []

  const as = (token: string) => {
    const c = client(g.server.target, SERVICE, { token })
    clients.push(c)
    return c
  }
  const inferenceAs = (token?: string) => {
    const c = client(g.server.target, 'inference.GRPCInferenceService', token ? { token } : {})
    clients.push(c)
    return c
  }
  /** The REST answer's error message for the same input, with REST's "body" as gRPC's "request". */
  const restError = async (method: 'POST' | 'PATCH', url: string, payload: object, token?: string) => {
    const res = await suite.d.app.inject({ method, url, payload, headers: token ? bearer(token) : {} })
    expect(res.statusCode, res.body).toBe(400)
    return (res.json().error as string).replace(/\bbody\b/g, 'request')
  }
  async function registerAndLogin(email: string): Promise<Tokens> {
    await anonymous.call('Register', { email, password: PASSWORD })
    const tokens = await anonymous.call<Tokens>('Login', { email, password: PASSWORD })
    secrets.push(tokens.access_token, tokens.refresh_token)
    return tokens
  }
  const expectRefusal = (err: ServiceError, code: status, details?: string | RegExp) => {
    expect(err.code, err.details).toBe(code)
    if (typeof details === 'string') expect(err.details).toBe(details)
    else if (details) expect(err.details).toMatch(details)
  }

  beforeAll(async () => {
    g = await testGrpc({}, { identity: suite.d.identity, logger: capturingLogger(logLines) })
    anonymous = client(g.server.target, SERVICE)
    clients.push(anonymous)
  })
  afterAll(async () => {
    for (const c of clients) c.close()
    await g?.close()
  })

  it('declares exactly the ten methods', () => {
    const methods = Object.keys(
      (anonymous.raw.constructor as unknown as { service: Record<string, unknown> }).service,
    )
    expect(methods.sort()).toEqual(
      [
        'ApiKeys',
        'GetProfile',
        'Login',
        'Logout',
        'Refresh',
        'Register',
        'RequestPasswordReset',
        'ResetPassword',
        'UpdateProfile',
        'VerifyEmail',
      ].sort(),
    )
  })

  it('Register → Login → GetProfile → UpdateProfile, with RFC 3339 times and audit entries from the caller IP', async () => {
    const registered = await anonymous.call<{
      user: Record<string, unknown>
      advice?: string
      status: string
    }>('Register', {
      email: 'Ada@Example.test',
      password: PASSWORD,
      display_name: 'Ada',
    })
    expect(registered.advice).toBeUndefined()
    // Without mail.smtp_url registration answers explicitly (test/security/enumeration.test.ts has the other way).
    expect(registered.status).toBe('created')
    const user = fields(registered.user)
    expect(user).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      email: 'Ada@Example.test',
      display_name: 'Ada',
      role: 'user',
      email_verified: false,
      disabled: false,
      created_at: expect.stringMatching(RFC3339),
    })
    const tokens = await anonymous.call<Tokens>('Login', { email: 'ada@example.test', password: PASSWORD })
    secrets.push(tokens.access_token, tokens.refresh_token)
    expect(tokens).toMatchObject({ token_type: 'Bearer', expires_in: 900 })

    const ada = as(tokens.access_token)
    expect(fields(await ada.call('GetProfile'))).toEqual(user)
    // REST's GET /auth/me answers the same profile for the same token
    const rest = await suite.d.app.inject({
      method: 'GET',
      url: '/auth/me',
      headers: bearer(tokens.access_token),
    })
    expect(rest.json()).toEqual(user)

    expect(await ada.call('UpdateProfile', { display_name: 'Ada L.' })).toMatchObject({
      display_name: 'Ada L.',
    })
    const cleared = await ada.call<Record<string, unknown>>('UpdateProfile', { display_name: '' })
    expect(cleared).not.toHaveProperty('display_name')
    const renamed = await ada.call('UpdateProfile', { email: 'ada.l@example.test' })
    expect(renamed).toMatchObject({ email: 'ada.l@example.test', email_verified: false })
    // a new unverified address gets its own verification mail
    await mailedToken(suite.world.db, 'ada.l@example.test', /Confirm your e-mail/)

    const { rows } = await suite.world.db.query(
      `SELECT action, actor, ip FROM audit_log WHERE actor_user_id = $1 ORDER BY id`,
      [user.id],
    )
    expect(rows.map((r) => r.action)).toEqual([
      'user.create',
      'auth.login',
      'user.update',
      'user.update',
      'user.update',
    ])
    expect(rows.every((r) => r.actor === `user:${user.id}` && r.ip === '127.0.0.1')).toBe(true)
  })

  it('bad input is INVALID_ARGUMENT with the REST message; taken e-mails ALREADY_EXISTS', async () => {
    const cases: Array<[Record<string, string>, Record<string, string>]> = [
      [{ password: PASSWORD }, { email: '', password: PASSWORD }],
      [
        { email: 'f@example.test', password: 'short' },
        { email: 'f@example.test', password: 'short' },
      ],
      [
        { email: 'f@example.test', password: 'iloveyou' },
        { email: 'f@example.test', password: 'iloveyou' },
      ],
      [
        { email: 'not-an-email', password: PASSWORD },
        { email: 'not-an-email', password: PASSWORD },
      ],
      [
        { email: 'ab', password: PASSWORD },
        { email: 'ab', password: PASSWORD },
      ],
      [
        { email: 'f@example.test', password: PASSWORD, display_name: 'x'.repeat(201) },
        { email: 'f@example.test', password: PASSWORD, display_name: 'x'.repeat(201) },
      ],
    ]
    for (const [body, message] of cases) {
      const expected = await restError('POST', '/auth/register', body)
      const err = await anonymous.failure('Register', message)
      expectRefusal(err, status.INVALID_ARGUMENT, expected)
    }
    const first = await anonymous.failure('Register', { email: 'ab', password: PASSWORD })
    expect(first.details).toBe('request/email must NOT have fewer than 3 characters')
    expect(first.metadata.get('helix-error-code')).toEqual(['INVALID_INPUT'])
    expect((await anonymous.failure('Register', { password: PASSWORD })).details).toBe(
      "request must have required property 'email'",
    )

    await anonymous.call('Register', { email: 'frank@example.test', password: PASSWORD })
    const taken = await anonymous.failure('Register', { email: 'FRANK@example.test', password: PASSWORD })
    expectRefusal(taken, status.ALREADY_EXISTS)
    expect((await anonymous.failure('Login', { email: 'frank@example.test' })).details).toBe(
      "request must have required property 'password'",
    )
    const noChange = await as((await registerAndLogin('gus@example.test')).access_token).failure(
      'UpdateProfile',
      {},
    )
    expectRefusal(noChange, status.INVALID_ARGUMENT, 'request must NOT have fewer than 1 properties')
  })

  it('a wrong password, an unknown address and a bad refresh token are UNAUTHENTICATED alike; failures are audited', async () => {
    await registerAndLogin('erin@example.test')
    const wrong = await anonymous.failure('Login', {
      email: 'erin@example.test',
      password: 'wrong password here',
    })
    const unknown = await anonymous.failure('Login', {
      email: 'nobody@example.test',
      password: 'wrong password here',
    })
    expectRefusal(wrong, status.UNAUTHENTICATED, 'Invalid credentials.')
    expectRefusal(unknown, status.UNAUTHENTICATED, 'Invalid credentials.')
    const { rows } = await suite.world.db.query(
      "SELECT details->>'reason' AS reason, ip FROM audit_log WHERE action = 'auth.login_failed' ORDER BY id",
    )
    expect(rows).toEqual([
      { reason: 'bad_password', ip: '127.0.0.1' },
      { reason: 'unknown_email', ip: '127.0.0.1' },
    ])
    expectRefusal(
      await anonymous.failure('Refresh', { refresh_token: 'not-a-refresh-token-at-all-0000' }),
      status.UNAUTHENTICATED,
      'Invalid credentials.',
    )
    expectRefusal(
      await anonymous.failure('Refresh', {}),
      status.INVALID_ARGUMENT,
      "request must have required property 'refresh_token'",
    )
  })

  it('methods that need a signed-in caller are UNAUTHENTICATED without a credential or with a bad one', async () => {
    for (const [method, request] of [
      ['GetProfile', {}],
      ['UpdateProfile', { display_name: 'x' }],
      ['Logout', {}],
      ['ApiKeys', { list: {} }],
    ] as const) {
      const none = await anonymous.failure(method, request)
      expectRefusal(none, status.UNAUTHENTICATED, /Bearer/)
      expectRefusal(
        await as('garbage').failure(method, request),
        status.UNAUTHENTICATED,
        'The access token is malformed.',
      )
    }
  })

  it('Refresh rotates the pair; reusing a refresh token revokes the whole session', async () => {
    const tokens = await registerAndLogin('carol@example.test')
    const rotated = await anonymous.call<Tokens>('Refresh', { refresh_token: tokens.refresh_token })
    secrets.push(rotated.access_token, rotated.refresh_token)
    expect(rotated.refresh_token).not.toBe(tokens.refresh_token)
    expect(rotated.token_type).toBe('Bearer')
    expect(await as(rotated.access_token).call('GetProfile')).toMatchObject({ email: 'carol@example.test' })
    const reuse = await anonymous.failure('Refresh', { refresh_token: tokens.refresh_token })
    expectRefusal(reuse, status.UNAUTHENTICATED, 'Invalid credentials.')
    expectRefusal(
      await anonymous.failure('Refresh', { refresh_token: rotated.refresh_token }),
      status.UNAUTHENTICATED,
    )
    expectRefusal(await as(rotated.access_token).failure('GetProfile'), status.UNAUTHENTICATED)
  })

  it('Logout ends the presenting session, or the one a refresh token names', async () => {
    const tokens = await registerAndLogin('dave@example.test')
    expect(await as(tokens.access_token).call('Logout')).toEqual({ revoked: true })
    expectRefusal(await as(tokens.access_token).failure('GetProfile'), status.UNAUTHENTICATED)
    expectRefusal(
      await anonymous.failure('Refresh', { refresh_token: tokens.refresh_token }),
      status.UNAUTHENTICATED,
    )

    const one = await anonymous.call<Tokens>('Login', { email: 'dave@example.test', password: PASSWORD })
    const two = await anonymous.call<Tokens>('Login', { email: 'dave@example.test', password: PASSWORD })
    secrets.push(one.access_token, one.refresh_token, two.access_token, two.refresh_token)
    expectRefusal(
      await as(one.access_token).failure('Logout', { refresh_token: '' }),
      status.INVALID_ARGUMENT,
      'request/refresh_token must NOT have fewer than 1 characters',
    )
    expect(await as(one.access_token).call('Logout', { refresh_token: two.refresh_token })).toEqual({
      revoked: true,
    })
    expectRefusal(
      await anonymous.failure('Refresh', { refresh_token: two.refresh_token }),
      status.UNAUTHENTICATED,
    )
    // the first session's refresh token still works
    const again = await anonymous.call<Tokens>('Refresh', { refresh_token: one.refresh_token })
    secrets.push(again.access_token, again.refresh_token)
    const { rows } = await suite.world.db.query(
      "SELECT count(*)::int AS n FROM audit_log WHERE action = 'auth.logout'",
    )
    expect(rows[0].n).toBe(2)
  })

  it('VerifyEmail takes the mailed token once', async () => {
    const tokens = await registerAndLogin('vera@example.test')
    const token = await mailedToken(suite.world.db, 'vera@example.test', /Confirm your e-mail/)
    secrets.push(token)
    expect(await anonymous.call('VerifyEmail', { token })).toEqual({ verified: true })
    expect(await as(tokens.access_token).call('GetProfile')).toMatchObject({ email_verified: true })
    const again = await anonymous.failure('VerifyEmail', { token })
    expectRefusal(
      again,
      status.INVALID_ARGUMENT,
      'The verification token is invalid, expired or already used.',
    )
    expect(again.metadata.get('helix-error-code')).toEqual(['INVALID_TOKEN'])
    expectRefusal(
      await anonymous.failure('VerifyEmail', {}),
      status.INVALID_ARGUMENT,
      "request must have required property 'token'",
    )
  })

  it('RequestPasswordReset answers alike for known and unknown addresses; ResetPassword sets the password once', async () => {
    await registerAndLogin('rita@example.test')
    const known = await anonymous.call('RequestPasswordReset', { email: 'rita@example.test' })
    const unknown = await anonymous.call('RequestPasswordReset', { email: 'nobody@example.test' })
    expect(known).toEqual({ message: 'If an account uses this address, a reset message is on its way.' })
    expect(unknown).toEqual(known)
    const token = await mailedToken(suite.world.db, 'rita@example.test', /reset/i)
    secrets.push(token)

    // a weak password is refused without using up the token
    const weak = await anonymous.failure('ResetPassword', { token, password: 'iloveyou' })
    expectRefusal(weak, status.INVALID_ARGUMENT, 'This password is on a list of commonly used passwords.')
    const fresh = 'a brand new long passphrase'
    secrets.push(fresh)
    expect(await anonymous.call('ResetPassword', { token, password: fresh })).toEqual({ reset: true })
    expectRefusal(
      await anonymous.failure('ResetPassword', { token, password: fresh }),
      status.INVALID_ARGUMENT,
      'The reset token is invalid, expired or already used.',
    )
    expectRefusal(
      await anonymous.failure('Login', { email: 'rita@example.test', password: PASSWORD }),
      status.UNAUTHENTICATED,
    )
    const tokens = await anonymous.call<Tokens>('Login', { email: 'rita@example.test', password: fresh })
    secrets.push(tokens.access_token, tokens.refresh_token)
    const { rows } = await suite.world.db.query(
      "SELECT action FROM audit_log WHERE action IN ('auth.password_forgot', 'auth.password_reset') ORDER BY id",
    )
    expect(rows.map((r) => r.action)).toEqual(['auth.password_forgot', 'auth.password_reset'])
  })

  it('ApiKeys: create shows the secret once, the key serves inference over gRPC, rotate and revoke take effect', async () => {
    const tokens = await registerAndLogin('kim@example.test')
    const kim = as(tokens.access_token)
    const created = await kim.call<{ created: { api_key: ApiKey; key: string } }>('ApiKeys', {
      create: {
        name: 'ci',
        scopes: ['infer', 'models:read'],
        rate_limit_per_min: 100,
        quota_requests: '1000',
        quota_period: 'day',
      },
    })
    const { key, api_key } = created.created
    secrets.push(key)
    expect(key).toMatch(/^hx_[0-9A-Za-z]{36}$/)
    expect(api_key).toMatchObject({
      name: 'ci',
      prefix: key.slice(0, 7),
      last4: key.slice(-4),
      scopes: ['infer', 'models:read'],
      rate_limit_per_min: 100,
      quota_requests: '1000',
      quota_period: 'day',
      created_at: expect.stringMatching(RFC3339),
    })
    expect(api_key).not.toHaveProperty('revoked_at')

    const listed = await kim.call<{ listed: { api_keys: ApiKey[] } }>('ApiKeys', { list: {} })
    expect(listed.listed.api_keys.map((k) => k.id)).toEqual([api_key.id])
    expect(JSON.stringify(listed)).not.toContain(key)

    // the key works on the inference service of the same gRPC face
    const withKey = inferenceAs(key)
    expect(await withKey.call('ServerLive')).toEqual({ live: true })
    const answer = await withKey.call<{ raw_output_contents: Buffer[] }>('ModelInfer', ADD_REQUEST)
    expect(floatsOf(answer.raw_output_contents[0])).toEqual([11, 22, 33, 44])
    expectRefusal(await inferenceAs().failure('ModelInfer', ADD_REQUEST), status.UNAUTHENTICATED)

    // rotation with no grace: the new secret works, the old one stops
    const rotated = await kim.call<{ rotated: { api_key: ApiKey; key: string } }>('ApiKeys', {
      rotate: { id: api_key.id, grace_seconds: 0 },
    })
    secrets.push(rotated.rotated.key)
    expect(rotated.rotated.key).not.toBe(key)
    expect(rotated.rotated.api_key.id).toBe(api_key.id)
    expect(rotated.rotated.api_key.grace_until).toMatch(RFC3339)
    await inferenceAs(rotated.rotated.key).call('ModelInfer', ADD_REQUEST)
    expectRefusal(await inferenceAs(key).failure('ModelInfer', ADD_REQUEST), status.UNAUTHENTICATED)

    const revoked = await kim.call<{ revoked: ApiKey }>('ApiKeys', { revoke: { id: api_key.id } })
    expect(revoked.revoked.revoked_at).toMatch(RFC3339)
    expect(JSON.stringify(revoked)).not.toContain(rotated.rotated.key)
    const refused = await inferenceAs(rotated.rotated.key).failure('ModelInfer', ADD_REQUEST)
    expectRefusal(refused, status.UNAUTHENTICATED, 'Invalid credentials.')

    expect((await kim.call<{ listed: { api_keys: ApiKey[] } }>('ApiKeys', { list: {} })).listed).toEqual({
      api_keys: [],
    })
    const all = await kim.call<{ listed: { api_keys: ApiKey[] } }>('ApiKeys', {
      list: { include_revoked: true },
    })
    expect(all.listed.api_keys.map((k) => k.id)).toEqual([api_key.id])

    const { rows } = await suite.world.db.query(
      `SELECT action, actor, target, ip FROM audit_log WHERE action LIKE 'apikey.%' AND target = $1 ORDER BY id`,
      [`apikey:${api_key.id}`],
    )
    const userId = (await kim.call<{ id: string }>('GetProfile')).id
    expect(rows).toEqual(
      ['apikey.create', 'apikey.rotate', 'apikey.revoke'].map((action) => ({
        action,
        actor: `user:${userId}`,
        target: `apikey:${api_key.id}`,
        ip: '127.0.0.1',
      })),
    )
  })

  it('ApiKeys refusals: scopes beyond the caller PERMISSION_DENIED, bad input INVALID_ARGUMENT as REST, others’ keys NOT_FOUND', async () => {
    const tokens = await registerAndLogin('lee@example.test')
    const lee = as(tokens.access_token)
    const beyond = await lee.failure('ApiKeys', { create: { name: 'root', scopes: ['admin'] } })
    expectRefusal(beyond, status.PERMISSION_DENIED, 'A key cannot have scopes its creator does not hold.')
    const other = await createAccount(suite.d.identity.deps, {
      email: 'other@example.test',
      password: PASSWORD,
    })
    expectRefusal(
      await lee.failure('ApiKeys', { create: { name: 'x', scopes: ['infer'], user_id: other.user.id } }),
      status.PERMISSION_DENIED,
      'Only administrators create keys for other users.',
    )

    const bad: Array<[Record<string, unknown>, Record<string, unknown>]> = [
      [{ name: 'x', scopes: [] }, { name: 'x' }],
      [
        { name: 'x', scopes: ['infer'], rate_limit_per_min: 0 },
        { name: 'x', scopes: ['infer'], rate_limit_per_min: 0 },
      ],
      [
        { name: 'x', scopes: ['infer'], expires_at: 'tomorrow' },
        { name: 'x', scopes: ['infer'], expires_at: 'tomorrow' },
      ],
      [
        { name: 'x', scopes: ['infer'], quota_period: 'week' },
        { name: 'x', scopes: ['infer'], quota_period: 'week' },
      ],
      [
        { name: 'x', scopes: ['infer'], quota_items: 5 },
        { name: 'x', scopes: ['infer'], quota_items: '5' },
      ],
      [
        { name: 'x', scopes: ['wizard'] },
        { name: 'x', scopes: ['wizard'] },
      ],
      [
        { name: 'x'.repeat(101), scopes: ['infer'] },
        { name: 'x'.repeat(101), scopes: ['infer'] },
      ],
      [
        { name: 'x', scopes: ['infer'], expires_at: '2001-01-01T00:00:00Z' },
        { name: 'x', scopes: ['infer'], expires_at: '2001-01-01T00:00:00Z' },
      ],
    ]
    for (const [body, create] of bad) {
      const expected = (await restError('POST', '/auth/apikeys', body, tokens.access_token)).replace(
        /\brequest\b/g,
        'request/create',
      )
      expectRefusal(await lee.failure('ApiKeys', { create }), status.INVALID_ARGUMENT, expected)
    }
    expect(
      (await lee.failure('ApiKeys', { create: { name: 'x', scopes: ['infer'], rate_limit_per_min: 0 } }))
        .details,
    ).toBe('request/create/rate_limit_per_min must be >= 1')

    expectRefusal(
      await lee.failure('ApiKeys', { revoke: { id: 'nope' } }),
      status.INVALID_ARGUMENT,
      'request/revoke/id must match format "uuid"',
    )
    expectRefusal(
      await lee.failure('ApiKeys', { rotate: { id: other.user.id, grace_seconds: 31 * 86_400 } }),
      status.INVALID_ARGUMENT,
      'request/rotate/grace_seconds must be <= 2592000',
    )
    expectRefusal(await lee.failure('ApiKeys', {}), status.INVALID_ARGUMENT, /create, list, rotate or revoke/)

    // someone else's key looks absent
    const theirs = await as(
      (await anonymous.call<Tokens>('Login', { email: 'other@example.test', password: PASSWORD }))
        .access_token,
    ).call<{ created: { api_key: ApiKey; key: string } }>('ApiKeys', {
      create: { name: 'mine', scopes: ['infer'] },
    })
    secrets.push(theirs.created.key)
    for (const request of [
      { rotate: { id: theirs.created.api_key.id } },
      { revoke: { id: theirs.created.api_key.id } },
    ]) {
      expectRefusal(await lee.failure('ApiKeys', request), status.NOT_FOUND, /was not found/)
    }
    expect((await lee.call('ApiKeys', { list: { all: true } })).listed).toEqual({ api_keys: [] })

    // an administrator sees every user's keys and may create one for another user
    await createAccount(suite.d.identity.deps, {
      email: 'root@example.test',
      password: PASSWORD,
      role: 'admin',
    })
    const rootTokens = await anonymous.call<Tokens>('Login', {
      email: 'root@example.test',
      password: PASSWORD,
    })
    secrets.push(rootTokens.access_token, rootTokens.refresh_token)
    const root = as(rootTokens.access_token)
    const listed = await root.call<{ listed: { api_keys: ApiKey[] } }>('ApiKeys', { list: { all: true } })
    expect(listed.listed.api_keys.map((k) => k.id)).toContain(theirs.created.api_key.id)
    const forLee = await root.call<{ created: { api_key: ApiKey; key: string } }>('ApiKeys', {
      create: {
        name: 'for-lee',
        scopes: ['admin'],
        user_id: (await lee.call<{ id: string }>('GetProfile')).id,
      },
    })
    secrets.push(forLee.created.key)
    expect(forLee.created.api_key.scopes).toEqual(['admin'])
  })

  it('an API key without an owner cannot use the account methods (PERMISSION_DENIED)', async () => {
    const service = await createKey(suite.d.identity.deps, CLI_ACTOR, { name: 'svc', scopes: ['infer'] })
    secrets.push(service.key)
    expectRefusal(
      await as(service.key).failure('GetProfile'),
      status.PERMISSION_DENIED,
      /needs a user account/,
    )
  })

  it('registration turned off is PERMISSION_DENIED, as REST answers 403', async () => {
    const closed = await daemon(suite.world, { auth: { allow_registration: false } })
    const g = await testGrpc({}, { identity: closed.identity })
    const auth = client(g.server.target, SERVICE)
    try {
      const err = await auth.failure('Register', { email: 'x@example.test', password: PASSWORD })
      expect(err.code).toBe(status.PERMISSION_DENIED)
      expect(err.details).toBe('Self-service registration is turned off on this server.')
      const rest = await closed.app.inject({
        method: 'POST',
        url: '/auth/register',
        payload: { email: 'x@example.test', password: PASSWORD },
      })
      expect(rest.statusCode).toBe(403)
      expect(rest.json().error).toBe(err.details)
    } finally {
      auth.close()
      await g.close()
      await closed.close()
    }
  })

  it('the credential methods share the low per-IP limit: RESOURCE_EXHAUSTED with retry-after, other methods unaffected', async () => {
    const tight = await daemon(suite.world, {
      rate_limit: { auth_per_ip_per_min: 3, per_ip_per_min: 1000, per_key_per_min: 1000 },
    })
    const g = await testGrpc({}, { identity: tight.identity })
    const auth = client(g.server.target, SERVICE)
    try {
      const codes: status[] = []
      for (let i = 0; i < 5; i++) {
        const err = await auth.failure('Login', { email: 'a@example.test', password: 'wrong wrong wrong' })
        codes.push(err.code)
        if (err.code === status.RESOURCE_EXHAUSTED) {
          expect(err.details).toMatch(/Rate limit exceeded \(.*per-ip-auth.*\)/)
          expect(Number(err.metadata.get('retry-after')[0])).toBeGreaterThan(0)
          expect(err.metadata.get('helix-error-code')).toEqual(['RATE_LIMITED'])
        }
      }
      expect(codes).toEqual([
        status.UNAUTHENTICATED,
        status.UNAUTHENTICATED,
        status.UNAUTHENTICATED,
        status.RESOURCE_EXHAUSTED,
        status.RESOURCE_EXHAUSTED,
      ])
      for (const [method, request] of [
        ['Register', { email: 'b@example.test', password: PASSWORD }],
        ['Refresh', { refresh_token: 'x'.repeat(43) }],
        ['VerifyEmail', { token: 'x'.repeat(43) }],
        ['RequestPasswordReset', { email: 'b@example.test' }],
        ['ResetPassword', { token: 'x'.repeat(43), password: PASSWORD }],
      ] as const) {
        expect((await auth.failure(method, request)).code, method).toBe(status.RESOURCE_EXHAUSTED)
      }
      // the signed-in methods are not sign-in attempts
      expect((await auth.failure('GetProfile')).code).toBe(status.UNAUTHENTICATED)
    } finally {
      auth.close()
      await g.close()
      await tight.close()
    }
  })
  it('no password, token or key secret reaches a log line', () => {
    const text = `${logLines.join('\n')}\n${suite.d.logs.text()}`
    expect(secrets.length).toBeGreaterThan(20)
    for (const secret of secrets) expect(text.includes(secret), 'a secret was logged').toBe(false)
  })
})
