import { status } from '@grpc/grpc-js'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createAccount } from '../../src/core/identity/accounts.js'
import { SmtpMailer } from '../../src/core/identity/mail/smtp-mailer.js'
import { type Daemon, daemon, type IdentityWorld, identityWorld } from '../core/identity/identity-harness.js'
import { type SmtpSink, startSmtpSink, textOf, tokenFrom } from '../core/identity/mail/smtp-sink.js'
import { client, type TestClient, type TestGrpc, testGrpc } from '../grpc/fixtures.js'

/**
 * Account enumeration by registration (ASVS V6.3.8): with mail configured, POST /auth/register and
 * gRPC Register answer a taken address exactly as a new one — status, body, headers and time — and
 * only the mail says what happened. Real HTTP and gRPC on loopback, real PostgreSQL, a real SMTP server.
 */

const PASSWORD = 'correct horse battery staple'
/** What the registrant tries to take over a taken address with. */
const INTRUDER_PASSWORD = 'an intruder chose this one'
const ATTEMPT_SUBJECT = /^Subject: Someone tried to register with your e-mail address/m
const VERIFY_SUBJECT = /^Subject: Confirm your e-mail address for Helix/m

describe('registration reveals nothing about which addresses have accounts', () => {
  let world: IdentityWorld
  let d: Daemon
  let sink: SmtpSink
  let url: string
  let g: TestGrpc
  let grpc: TestClient

  beforeAll(async () => {
    world = await identityWorld()
    sink = await startSmtpSink()
    d = await daemon(
      world,
      { mail: { smtp_url: sink.url, from: 'helix@example.test', public_url: 'https://helix.example.test' } },
      { mailer: new SmtpMailer(sink.url, 'helix@example.test') },
    )
    url = await d.app.listen({ host: '127.0.0.1', port: 0 })
    g = await testGrpc({}, { identity: d.identity })
    grpc = client(g.server.target, 'helix.auth.v1.AuthService')
    for (const email of ['owner@example.test', 'timed.owner@example.test', 'grpc.owner@example.test'])
      await createAccount(d.identity.deps, { email, password: PASSWORD })
  }, 120_000)
  afterAll(async () => {
    grpc?.close()
    await g?.close()
    await d?.close()
    await sink?.stop()
    await world?.teardown()
  })

  const register = (email: string, password = INTRUDER_PASSWORD) =>
    fetch(`${url}/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password }),
    })
  const login = (email: string, password: string) =>
    fetch(`${url}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password }),
    })
  /** Headers without what differs between any two calls: date, request id, the per-IP count left. */
  const stable = (headers: Headers) => {
    const { date, 'x-request-id': _id, ratelimit, ...rest } = Object.fromEntries(headers)
    return { ...rest, ratelimit: String(ratelimit).replace(/r=\d+/, 'r=N') }
  }
  const accounts = async (email: string) =>
    (
      await world.db.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM users WHERE lower(email) = lower($1)',
        [email],
      )
    ).rows[0].n
  /** Mails to `to` whose raw text matches `subject`, once at least `count` have arrived. */
  const mailsTo = (to: string, subject: RegExp, count = 1) =>
    vi.waitFor(
      () => {
        const found = sink.received.filter((m) => m.to.includes(to) && subject.test(m.raw))
        if (found.length < count) throw new Error(`${found.length} of ${count} mails to ${to} so far`)
        return found
      },
      { timeout: 10_000, interval: 50 },
    )
  /** Audit entries of taken-address registrations of one account, once `count` are written. */
  const takenAttempts = (email: string, count: number) =>
    vi.waitFor(
      async () => {
        const { rows } = await world.db.query<{ details: { notified: boolean } }>(
          `SELECT a.details FROM audit_log a JOIN users u ON a.target = 'user:' || u.id
            WHERE a.action = 'auth.register_taken' AND lower(u.email) = lower($1)`,
          [email],
        )
        if (rows.length < count) throw new Error(`${rows.length} of ${count} attempts audited so far`)
        return rows
      },
      { timeout: 10_000, interval: 50 },
    )

  it('a taken address and a new one get the same status, body and headers', async () => {
    const fresh = await register('newcomer@example.test')
    const taken = await register('Owner@Example.test')
    expect(fresh.status).toBe(202)
    expect(taken.status).toBe(fresh.status)
    const body = await fresh.text()
    expect(await taken.text()).toBe(body)
    expect(JSON.parse(body)).toEqual({
      status: 'pending_verification',
      message: 'If this address can be registered, we have sent a verification e-mail.',
    })
    expect(stable(taken.headers)).toEqual(stable(fresh.headers))
    // A weak password is refused before anything is looked up: alike for both.
    const weakFresh = await register('another.newcomer@example.test', 'iloveyou')
    const weakTaken = await register('owner@example.test', 'iloveyou')
    expect(weakFresh.status).toBe(400)
    expect(weakTaken.status).toBe(400)
    expect((await weakTaken.json()).error).toBe((await weakFresh.json()).error)
  })

  it("the new address gets its account and a verification link; the taken one's owner gets a note and keeps the account", async () => {
    const [verify] = await mailsTo('newcomer@example.test', VERIFY_SUBJECT)
    const verified = await fetch(`${url}/auth/email/verify?token=${tokenFrom(verify.raw)}`)
    expect(verified.status, await verified.text()).toBe(200)
    expect((await login('newcomer@example.test', INTRUDER_PASSWORD)).status).toBe(200)

    const [note] = await mailsTo('owner@example.test', ATTEMPT_SUBJECT)
    const text = textOf(note.raw)
    expect(text).toMatch(/sign in with your existing password at https:\/\/helix\.example\.test/)
    expect(text).toMatch(/POST \/auth\/password\/forgot/)
    // No token and no password in the note; no verification mail for the taken address.
    expect(text).not.toContain(INTRUDER_PASSWORD)
    expect(text).not.toMatch(/^ {2}[A-Za-z0-9_-]{40,}\s*$/m)
    expect(
      sink.received.filter((m) => m.to.includes('owner@example.test') && VERIFY_SUBJECT.test(m.raw)),
    ).toHaveLength(1)

    // No second account, and the owner's password is unchanged.
    expect(await accounts('owner@example.test')).toBe(1)
    expect((await login('owner@example.test', INTRUDER_PASSWORD)).status).toBe(401)
    expect((await login('owner@example.test', PASSWORD)).status).toBe(200)
    const [attempt] = await takenAttempts('owner@example.test', 1)
    expect(attempt.details).toEqual({ notified: true })
  })

  it('a new address and a taken one take about the same time (the same argon2id work on both paths)', async () => {
    const fresh: number[] = []
    const taken: number[] = []
    const time = async (email: string) => {
      const t = performance.now()
      const res = await register(email)
      const ms = performance.now() - t
      expect(res.status).toBe(202)
      return ms
    }
    // Interleaved, so the work each answer leaves behind (the insert, the mail) weighs on both alike.
    for (let i = 0; i < 5; i++) {
      fresh.push(await time(`timed.newcomer.${i}@example.test`))
      taken.push(await time('timed.owner@example.test'))
    }
    const median = (samples: number[]) => samples.sort((a, b) => a - b)[2]
    const ratio = median(fresh) / median(taken)
    expect(ratio).toBeGreaterThan(0.5)
    expect(ratio).toBeLessThan(2)
    // Registering someone's address over and over is no mail cannon: three notes an hour at most.
    const attempts = await takenAttempts('timed.owner@example.test', 5)
    expect(attempts.filter((a) => a.details.notified)).toHaveLength(3)
    expect(await mailsTo('timed.owner@example.test', ATTEMPT_SUBJECT, 3)).toHaveLength(3)
    expect(await accounts('timed.owner@example.test')).toBe(1)
  })

  it('gRPC Register answers a new and a taken address alike, with the same outcome', async () => {
    const fresh = await grpc.call<Record<string, unknown>>('Register', {
      email: 'grpc.newcomer@example.test',
      password: INTRUDER_PASSWORD,
    })
    const taken = await grpc.call<Record<string, unknown>>('Register', {
      email: 'GRPC.owner@example.test',
      password: INTRUDER_PASSWORD,
    })
    expect(taken).toEqual(fresh)
    expect(fresh).toMatchObject({
      status: 'pending_verification',
      message: 'If this address can be registered, we have sent a verification e-mail.',
    })
    expect(fresh.user ?? null).toBeNull()
    await mailsTo('grpc.newcomer@example.test', VERIFY_SUBJECT)
    await mailsTo('grpc.owner@example.test', ATTEMPT_SUBJECT)
    expect(await accounts('grpc.newcomer@example.test')).toBe(1)
    expect(await accounts('grpc.owner@example.test')).toBe(1)
    expect((await login('grpc.owner@example.test', INTRUDER_PASSWORD)).status).toBe(401)
    // A weak password is INVALID_ARGUMENT for both, with the same words.
    const weakFresh = await grpc.failure('Register', {
      email: 'grpc.other@example.test',
      password: 'iloveyou',
    })
    const weakTaken = await grpc.failure('Register', {
      email: 'grpc.owner@example.test',
      password: 'iloveyou',
    })
    expect(weakFresh.code).toBe(status.INVALID_ARGUMENT)
    expect([weakTaken.code, weakTaken.details]).toEqual([weakFresh.code, weakFresh.details])
  })

  it('/openapi.json describes both answers of POST /auth/register', async () => {
    const doc = (await d.app.inject({ method: 'GET', url: '/openapi.json' })).json()
    const responses = doc.paths['/auth/register'].post.responses
    const schemaOf = (code: string) => responses[code].content['application/json'].schema
    expect(schemaOf('201').properties.status).toMatchObject({ enum: ['created'] })
    expect(schemaOf('201').required).toEqual(expect.arrayContaining(['status', 'user']))
    expect(schemaOf('202').properties.status).toMatchObject({ enum: ['pending_verification'] })
    expect(schemaOf('202').required).toEqual(expect.arrayContaining(['status', 'message']))
  })

  it("no registrant's password reaches a log line", () => {
    expect(d.logs.text()).not.toContain(INTRUDER_PASSWORD)
  })

  it('with verification required, signing in after registering tells a new address from a taken one by nothing', async () => {
    // The registrant's last probe: sign in with the password they chose. A new address's account
    // exists, unconfirmed; a taken address's password is not theirs. Both answers must be the same.
    const strict = await daemon(
      world,
      {
        mail: { smtp_url: sink.url, from: 'helix@example.test', public_url: 'https://helix.example.test' },
        auth: { ...world.config.auth, require_email_verification: true },
      },
      { mailer: new SmtpMailer(sink.url, 'helix@example.test') },
    )
    try {
      const post = (path: string, email: string) =>
        strict.app.inject({ method: 'POST', url: path, payload: { email, password: INTRUDER_PASSWORD } })
      expect((await post('/auth/register', 'strict.newcomer@example.test')).statusCode).toBe(202)
      expect((await post('/auth/register', 'owner@example.test')).statusCode).toBe(202)
      await mailsTo('strict.newcomer@example.test', VERIFY_SUBJECT)
      const fresh = await post('/auth/login', 'strict.newcomer@example.test')
      const taken = await post('/auth/login', 'owner@example.test')
      expect(fresh.statusCode).toBe(401)
      expect([taken.statusCode, taken.body]).toEqual([fresh.statusCode, fresh.body])
      expect(stable(new Headers(taken.headers as Record<string, string>))).toEqual(
        stable(new Headers(fresh.headers as Record<string, string>)),
      )
      // The unconfirmed account's owner learns why by mail: a fresh link, which then lets them in.
      const [, reminder] = await mailsTo('strict.newcomer@example.test', VERIFY_SUBJECT, 2)
      const verified = await strict.app.inject({
        method: 'GET',
        url: `/auth/email/verify?token=${tokenFrom(reminder.raw)}`,
      })
      expect(verified.statusCode, verified.body).toBe(200)
      expect((await post('/auth/login', 'strict.newcomer@example.test')).statusCode).toBe(200)
      const { rows } = await world.db.query(
        `SELECT a.action FROM audit_log a JOIN users u ON a.actor = 'user:' || u.id
          WHERE u.email = 'strict.newcomer@example.test' AND a.action LIKE 'auth.login%' ORDER BY a.seq`,
      )
      expect(rows.map((r) => r.action)).toEqual(['auth.login_unverified', 'auth.login'])
    } finally {
      await strict.close()
    }
  })

  it('without mail (mail.smtp_url unset) registration answers explicitly: 201 with the account, then 409', async () => {
    // The one-box default, documented: nothing could tell the owner of a taken address, or a new one its link.
    const noMail = await daemon(world)
    try {
      const post = (email: string) =>
        noMail.app.inject({ method: 'POST', url: '/auth/register', payload: { email, password: PASSWORD } })
      const created = await post('solo@example.test')
      expect(created.statusCode, created.body).toBe(201)
      expect(created.json()).toMatchObject({ status: 'created', user: { email: 'solo@example.test' } })
      const again = await post('SOLO@example.test')
      expect(again.statusCode).toBe(409)
      expect(again.json().error).toMatch(/already exists/)
    } finally {
      await noMail.close()
    }
  })
})
