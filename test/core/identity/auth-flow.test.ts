import { generateKeyPairSync } from 'node:crypto'
import { base64url, SignJWT } from 'jose'
import { describe, expect, it } from 'vitest'
import { listOutbox } from '../../../src/core/identity/mail/outbox-mailer.js'
import { bearer, INFER_BODY, identitySuite } from './identity-harness.js'

const PASSWORD = 'correct horse battery staple'

describe('users, sessions and tokens against a real daemon and PostgreSQL', () => {
  const suite = identitySuite()

  const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
    suite.d.app.inject({ method: 'POST', url, payload: payload as object, headers })

  async function registerAndLogin(email: string) {
    const reg = await post('/auth/register', { email, password: PASSWORD })
    expect(reg.statusCode, reg.body).toBe(201)
    const login = await post('/auth/login', { email, password: PASSWORD })
    expect(login.statusCode, login.body).toBe(200)
    return login.json() as {
      access_token: string
      refresh_token: string
      token_type: string
      expires_in: number
    }
  }

  it('register → login → infer with the access token → 200; without a token → 401', async () => {
    const tokens = await registerAndLogin('ada@example.test')
    expect(tokens.token_type).toBe('Bearer')
    expect(tokens.expires_in).toBe(900)
    const ok = await post('/v2/models/add/infer', INFER_BODY, bearer(tokens.access_token))
    expect(ok.statusCode, ok.body).toBe(200)
    expect(ok.json().outputs[0].data).toEqual([11, 22, 33, 44])
    expect(ok.headers.ratelimit).toMatch(/^"per-key";r=\d+;t=\d+$/)
    const none = await post('/v2/models/add/infer', INFER_BODY)
    expect(none.statusCode).toBe(401)
    expect(none.headers['www-authenticate']).toBe('Bearer realm="helix"')
    expect(none.json()).toEqual({ error: expect.stringContaining('Bearer') })
  })

  it('refuses alg none, a key outside the JWKS and expired tokens with 401', async () => {
    const tokens = await registerAndLogin('bob@example.test')
    const [header, payload] = tokens.access_token.split('.')
    const kid = JSON.parse(Buffer.from(header, 'base64url').toString()).kid
    const none = `${base64url.encode(JSON.stringify({ alg: 'none', kid, typ: 'at+jwt' }))}.${payload}.`
    const { privateKey } = generateKeyPairSync('ed25519')
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString())
    const stranger = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'at+jwt' })
      .sign(privateKey)
    const expired = await new SignJWT({ ...claims, iat: 1_000_000, nbf: 1_000_000, exp: 1_000_900 })
      .setProtectedHeader({ alg: suite.d.identity.deps.keys!.signer.alg, kid, typ: 'at+jwt' })
      .sign(suite.d.identity.deps.keys!.signer.privateKey)
    for (const token of [none, stranger, expired, 'garbage', `${tokens.access_token}x`]) {
      const res = await post('/v2/models/add/infer', INFER_BODY, bearer(token))
      expect(res.statusCode, token).toBe(401)
      expect(res.headers['www-authenticate']).toContain('error="invalid_token"')
    }
    // the genuine token still works
    expect((await post('/v2/models/add/infer', INFER_BODY, bearer(tokens.access_token))).statusCode).toBe(200)
  })

  it('refresh twice with the same token → 401 the second time, and the first refresh result is revoked too', async () => {
    const tokens = await registerAndLogin('carol@example.test')
    const first = await post('/auth/refresh', { refresh_token: tokens.refresh_token })
    expect(first.statusCode, first.body).toBe(200)
    const rotated = first.json() as { access_token: string; refresh_token: string }
    expect(rotated.refresh_token).not.toBe(tokens.refresh_token)
    expect((await post('/v2/models/add/infer', INFER_BODY, bearer(rotated.access_token))).statusCode).toBe(
      200,
    )
    const reuse = await post('/auth/refresh', { refresh_token: tokens.refresh_token })
    expect(reuse.statusCode).toBe(401)
    // the family is dead: the newest refresh token and its access token stop working
    expect((await post('/auth/refresh', { refresh_token: rotated.refresh_token })).statusCode).toBe(401)
    expect((await post('/v2/models/add/infer', INFER_BODY, bearer(rotated.access_token))).statusCode).toBe(
      401,
    )
    const audit = await suite.world.db.query(
      "SELECT action FROM audit_log WHERE action = 'auth.refresh_reuse'",
    )
    expect(audit.rowCount).toBe(1)
  })

  it('logout revokes the session family and the access token at once', async () => {
    const tokens = await registerAndLogin('dave@example.test')
    const out = await post('/auth/logout', {}, bearer(tokens.access_token))
    expect(out.statusCode, out.body).toBe(200)
    expect((await post('/v2/models/add/infer', INFER_BODY, bearer(tokens.access_token))).statusCode).toBe(401)
    expect((await post('/auth/refresh', { refresh_token: tokens.refresh_token })).statusCode).toBe(401)
  })

  it('logout with a refresh token ends that session only', async () => {
    const one = await registerAndLogin('dana@example.test')
    const two = (await post('/auth/login', { email: 'dana@example.test', password: PASSWORD })).json()
    const out = await post('/auth/logout', { refresh_token: two.refresh_token }, bearer(one.access_token))
    expect(out.statusCode, out.body).toBe(200)
    expect((await post('/auth/refresh', { refresh_token: two.refresh_token })).statusCode).toBe(401)
    // the presenting access token is revoked by jti; the first session's refresh token still works
    expect((await post('/v2/models/add/infer', INFER_BODY, bearer(one.access_token))).statusCode).toBe(401)
    expect((await post('/auth/refresh', { refresh_token: one.refresh_token })).statusCode).toBe(200)
  })

  it('login failures all look the same and are audited', async () => {
    await registerAndLogin('erin@example.test')
    const wrong = await post('/auth/login', { email: 'erin@example.test', password: 'wrong password here' })
    const unknown = await post('/auth/login', {
      email: 'nobody@example.test',
      password: 'wrong password here',
    })
    expect(wrong.statusCode).toBe(401)
    expect(unknown.statusCode).toBe(401)
    expect(wrong.json()).toEqual(unknown.json())
    const { rows } = await suite.world.db.query(
      "SELECT details FROM audit_log WHERE action = 'auth.login_failed' ORDER BY id",
    )
    expect(rows.map((r) => r.details.reason)).toEqual(['bad_password', 'unknown_email'])
  })

  it('registration enforces the password policy and unique e-mails; verification mail lands in the outbox', async () => {
    expect(
      (await post('/auth/register', { email: 'f@example.test', password: 'short' })).json().error,
    ).toMatch(/at least 8/)
    expect(
      (await post('/auth/register', { email: 'f@example.test', password: 'iloveyou' })).json().error,
    ).toMatch(/common/)
    expect((await post('/auth/register', { email: 'not-an-email', password: PASSWORD })).statusCode).toBe(400)
    const ok = await post('/auth/register', { email: 'Frank@Example.test', password: 'zebrapiano' })
    expect(ok.statusCode).toBe(201)
    expect(ok.json().status).toBe('created')
    expect(ok.json().advice).toMatch(/15/)
    expect(
      (await post('/auth/register', { email: 'frank@example.test', password: PASSWORD })).statusCode,
    ).toBe(409)
    const mail = await listOutbox(suite.world.db, { to: 'frank@example.test' })
    expect(mail).toHaveLength(1)
    const token = /^ {2}([A-Za-z0-9_-]{40,})$/m.exec(mail[0].body)![1]
    const verify = await suite.d.app.inject({ method: 'GET', url: `/auth/email/verify?token=${token}` })
    expect(verify.statusCode, verify.body).toBe(200)
    expect(
      (await suite.d.app.inject({ method: 'GET', url: `/auth/email/verify?token=${token}` })).statusCode,
    ).toBe(400)
  })

  it('GET/PATCH /auth/me and password change (which ends every session)', async () => {
    const tokens = await registerAndLogin('gina@example.test')
    const me = await suite.d.app.inject({
      method: 'GET',
      url: '/auth/me',
      headers: bearer(tokens.access_token),
    })
    expect(me.json()).toMatchObject({
      email: 'gina@example.test',
      role: 'user',
      email_verified: false,
      disabled: false,
    })
    expect(me.body).not.toContain('argon2')
    const patched = await suite.d.app.inject({
      method: 'PATCH',
      url: '/auth/me',
      headers: bearer(tokens.access_token),
      payload: { display_name: 'Gina' },
    })
    expect(patched.json().display_name).toBe('Gina')
    const bad = await post(
      '/auth/password/change',
      { current_password: 'nope nope nope', new_password: 'a new long passphrase' },
      bearer(tokens.access_token),
    )
    expect(bad.statusCode).toBe(401)
    await new Promise((r) => setTimeout(r, 1100)) // the new password is set in a later second than the token's iat
    const changed = await post(
      '/auth/password/change',
      { current_password: PASSWORD, new_password: 'a new long passphrase' },
      bearer(tokens.access_token),
    )
    expect(changed.statusCode, changed.body).toBe(200)
    expect(
      (await suite.d.app.inject({ method: 'GET', url: '/auth/me', headers: bearer(tokens.access_token) }))
        .statusCode,
    ).toBe(401)
    expect((await post('/auth/refresh', { refresh_token: tokens.refresh_token })).statusCode).toBe(401)
    expect(
      (await post('/auth/login', { email: 'gina@example.test', password: 'a new long passphrase' }))
        .statusCode,
    ).toBe(200)
  })

  it('publishes the JWKS without private members', async () => {
    const res = await suite.d.app.inject({ method: 'GET', url: '/.well-known/jwks.json' })
    expect(res.statusCode).toBe(200)
    const { keys } = res.json() as { keys: Array<Record<string, unknown>> }
    expect(keys.length).toBeGreaterThan(0)
    for (const k of keys) {
      expect(k).toHaveProperty('kid')
      expect(k).toHaveProperty('alg')
      expect(k).not.toHaveProperty('d')
    }
  })
})
