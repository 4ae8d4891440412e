import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAccount, setAccountDisabled } from '../../../src/core/identity/accounts.js'
import { SmtpMailer } from '../../../src/core/identity/mail/smtp-mailer.js'
import {
  bearer,
  type Daemon,
  daemon,
  type IdentityWorld,
  INFER_BODY,
  identityWorld,
} from './identity-harness.js'
import { type SmtpSink, startSmtpSink, tokenFrom } from './mail/smtp-sink.js'

const PASSWORD = 'correct horse battery staple'

describe('password reset, disable, GDPR export and erasure, logs (real SMTP, real PostgreSQL)', () => {
  let world: IdentityWorld
  let d: Daemon
  let sink: SmtpSink
  const secrets: string[] = [PASSWORD]
  beforeAll(async () => {
    world = await identityWorld()
    sink = await startSmtpSink()
    d = await daemon(
      world,
      { mail: { smtp_url: sink.url, from: 'helix@example.test', public_url: 'https://helix.example.test' } },
      {
        mailer: new SmtpMailer(sink.url, 'helix@example.test'),
      },
    )
  })
  afterAll(async () => {
    await d?.close()
    await sink?.stop()
    await world?.teardown()
  })

  const post = (url: string, payload: unknown, headers: Record<string, string> = {}) =>
    d.app.inject({ method: 'POST', url, payload: payload as object, headers })
  const login = async (email: string, password = PASSWORD) => {
    const res = await post('/auth/login', { email, password })
    expect(res.statusCode, res.body).toBe(200)
    const tokens = res.json() as { access_token: string; refresh_token: string }
    secrets.push(tokens.access_token, tokens.refresh_token)
    return tokens
  }

  it('forgot-password answers identically for known and unknown e-mails; the mailed code works once', async () => {
    // With mail configured registration answers 202 for new and taken addresses alike (enumeration.test.ts).
    expect((await post('/auth/register', { email: 'ada@example.test', password: PASSWORD })).statusCode).toBe(
      202,
    )
    const verifyMail = await sink.next('ada@example.test')
    secrets.push(tokenFrom(verifyMail.raw))
    const known = await post('/auth/password/forgot', { email: 'ada@example.test' })
    const unknown = await post('/auth/password/forgot', { email: 'nobody@example.test' })
    expect(known.statusCode).toBe(202)
    expect(unknown.statusCode).toBe(known.statusCode)
    expect(unknown.body).toBe(known.body)
    const strip = (h: Record<string, unknown>) => {
      // date, request id and the remaining count of the shared per-IP limit differ between any two calls
      const { date, 'x-request-id': _id, ratelimit, ...rest } = h
      return { ...rest, ratelimit: String(ratelimit).replace(/r=\d+/, 'r=N') }
    }
    expect(strip(unknown.headers)).toEqual(strip(known.headers))
    const mail = await sink.next('ada@example.test')
    expect(mail.raw).toMatch(/Subject: Reset your Helix password/)
    const token = tokenFrom(mail.raw)
    secrets.push(token)
    expect(sink.received.filter((m) => m.to.includes('nobody@example.test'))).toHaveLength(0)
    // a weak new password does not burn the token
    expect((await post('/auth/password/reset', { token, password: 'short' })).statusCode).toBe(400)
    const reset = await post('/auth/password/reset', { token, password: 'a brand new passphrase' })
    expect(reset.statusCode, reset.body).toBe(200)
    secrets.push('a brand new passphrase')
    const again = await post('/auth/password/reset', { token, password: 'yet another passphrase' })
    expect(again.statusCode).toBe(400)
    expect(again.json().error).toMatch(/invalid, expired or already used/)
    expect((await post('/auth/login', { email: 'ada@example.test', password: PASSWORD })).statusCode).toBe(
      401,
    )
    await login('ada@example.test', 'a brand new passphrase')
    expect(
      (await post('/auth/password/reset', { token: 'x', password: 'a brand new passphrase' })).statusCode,
    ).toBe(400)
    expect((await post('/auth/email/verify', { token: 'A'.repeat(43) })).statusCode).toBe(400)
  })

  it('disabling a user kills their sessions and keys at once; login then fails', async () => {
    await createAccount(d.identity.deps, { email: 'bob@example.test', password: PASSWORD })
    const tokens = await login('bob@example.test')
    const key = (
      await post('/auth/apikeys', { name: 'k', scopes: ['infer'] }, bearer(tokens.access_token))
    ).json().key
    secrets.push(key)
    expect((await post('/v2/models/add/infer', INFER_BODY, bearer(key))).statusCode).toBe(200)
    await setAccountDisabled(d.identity.deps, 'bob@example.test', true)
    expect((await post('/v2/models/add/infer', INFER_BODY, bearer(key))).statusCode).toBe(401)
    expect((await post('/v2/models/add/infer', INFER_BODY, bearer(tokens.access_token))).statusCode).toBe(401)
    expect((await post('/auth/refresh', { refresh_token: tokens.refresh_token })).statusCode).toBe(401)
    expect((await post('/auth/login', { email: 'bob@example.test', password: PASSWORD })).statusCode).toBe(
      401,
    )
    const enabled = await setAccountDisabled(d.identity.deps, 'bob@example.test', false)
    expect(enabled.disabled).toBe(false)
    // keys stay revoked after re-enabling; the password works again
    expect((await post('/v2/models/add/infer', INFER_BODY, bearer(key))).statusCode).toBe(401)
    await login('bob@example.test')
  })

  it('GET /auth/me/export returns profile, keys, sessions, audit and requests; DELETE /auth/me erases them', async () => {
    await createAccount(d.identity.deps, {
      email: 'carol@example.test',
      password: PASSWORD,
      displayName: 'Carol',
    })
    const tokens = await login('carol@example.test')
    const created = (
      await post('/auth/apikeys', { name: 'carol-key', scopes: ['infer'] }, bearer(tokens.access_token))
    ).json()
    secrets.push(created.key)
    expect((await post('/v2/models/add/infer', INFER_BODY, bearer(created.key))).statusCode).toBe(200)
    expect((await post('/v2/models/add/infer', INFER_BODY, bearer(tokens.access_token))).statusCode).toBe(200)
    await new Promise((r) => setTimeout(r, 300))
    const exp = await d.app.inject({
      method: 'GET',
      url: '/auth/me/export',
      headers: bearer(tokens.access_token),
    })
    expect(exp.statusCode, exp.body).toBe(200)
    const data = exp.json()
    expect(data.profile).toMatchObject({ email: 'carol@example.test', display_name: 'Carol' })
    expect(data.api_keys).toEqual([
      expect.objectContaining({ id: created.id, name: 'carol-key', last4: created.last4 }),
    ])
    expect(data.api_keys[0].usage[0].requests).toBe(1)
    expect(data.sessions).toHaveLength(1)
    expect(data.audit.map((a: { action: string }) => a.action)).toEqual(
      expect.arrayContaining(['user.create', 'auth.login', 'apikey.create']),
    )
    expect(data.requests).toHaveLength(2)
    expect(exp.body).not.toContain(created.key)
    expect(exp.body).not.toContain('argon2')
    expect(exp.body).not.toContain(tokens.refresh_token)

    const wrong = await d.app.inject({
      method: 'DELETE',
      url: '/auth/me',
      payload: { password: 'not my password' },
      headers: bearer(tokens.access_token),
    })
    expect(wrong.statusCode).toBe(401)
    const del = await d.app.inject({
      method: 'DELETE',
      url: '/auth/me',
      payload: { password: PASSWORD },
      headers: bearer(tokens.access_token),
    })
    expect(del.statusCode, del.body).toBe(200)
    expect(del.json()).toMatchObject({ erased: true, request_log_rows: 2, api_keys_detached: 1 })
    const db = world.db
    expect((await db.query("SELECT 1 FROM users WHERE lower(email) = 'carol@example.test'")).rowCount).toBe(0)
    expect((await db.query('SELECT 1 FROM request_log WHERE api_key_id = $1', [created.id])).rowCount).toBe(0)
    expect(
      (
        await db.query(
          "SELECT 1 FROM audit_log WHERE actor_user_id IS NOT NULL AND actor LIKE 'user:%' AND actor = $1",
          [`user:${data.profile.id}`],
        )
      ).rowCount,
    ).toBe(0)
    const kept = await db.query('SELECT user_id, name, revoked_at FROM api_keys WHERE id = $1', [created.id])
    expect(kept.rows[0]).toMatchObject({ user_id: null, name: 'erased' })
    expect(kept.rows[0].revoked_at).not.toBeNull()
    expect(
      (await db.query('SELECT sum(requests)::int AS n FROM api_key_usage WHERE key_id = $1', [created.id]))
        .rows[0].n,
    ).toBe(1)
    // everything the person held is dead
    expect((await post('/v2/models/add/infer', INFER_BODY, bearer(created.key))).statusCode).toBe(401)
    expect((await post('/v2/models/add/infer', INFER_BODY, bearer(tokens.access_token))).statusCode).toBe(401)
    const mails = sink.received.filter((m) => m.to.includes('carol@example.test'))
    for (const m of mails) secrets.push(tokenFrom(m.raw))
  })

  it('no secret appears in any log line', async () => {
    // a few failing calls too, which log at info level
    await post('/auth/login', { email: 'ada@example.test', password: 'a wrong password given' })
    await post('/v2/models/add/infer', INFER_BODY, bearer('hx_notarealkeyatall000000000000000000000'))
    const text = d.logs.text()
    expect(d.logs.lines.length).toBeGreaterThan(20)
    for (const secret of new Set(secrets)) {
      expect(text.includes(secret), `a secret (${secret.slice(0, 6)}…) leaked into the logs`).toBe(false)
    }
    expect(text).not.toContain('a wrong password given')
    expect(text).not.toMatch(/hx_[0-9A-Za-z]{36}/)
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]+\.eyJ/)
    expect(text).not.toMatch(/\$argon2id\$/)
  })
})
