import { beforeAll, describe, expect, it } from 'vitest'
import { createAccount } from '../../../src/core/identity/accounts.js'
import {
  CLI_ACTOR,
  createKey,
  periodStart,
  rotateKey,
  secondsToPeriodEnd,
} from '../../../src/core/identity/api-keys.js'
import { bearer, INFER_BODY, identitySuite } from './identity-harness.js'

const PASSWORD = 'correct horse battery staple'

describe('API keys: scopes, rotation, revocation, limits, quotas and usage', () => {
  const suite = identitySuite({
    rate_limit: { per_key_per_min: 1000, per_ip_per_min: 100_000, auth_per_ip_per_min: 1000 },
  })
  let userToken: string
  let adminToken: string
  beforeAll(async () => {
    const deps = suite.d.identity.deps
    await createAccount(deps, { email: 'user@example.test', password: PASSWORD })
    await createAccount(deps, { email: 'root@example.test', password: PASSWORD, role: 'admin' })
    const login = async (email: string) =>
      (
        await suite.d.app.inject({
          method: 'POST',
          url: '/auth/login',
          payload: { email, password: PASSWORD },
        })
      ).json().access_token as string
    userToken = await login('user@example.test')
    adminToken = await login('root@example.test')
  })

  const infer = (key: string, model = 'add') =>
    suite.d.app.inject({
      method: 'POST',
      url: `/v2/models/${model}/infer`,
      payload: INFER_BODY,
      headers: bearer(key),
    })
  const createViaApi = async (token: string, body: Record<string, unknown>) =>
    suite.d.app.inject({ method: 'POST', url: '/auth/apikeys', payload: body, headers: bearer(token) })

  it('a key with scope infer works for infer and gets 403 on admin routes', async () => {
    const res = await createViaApi(userToken, { name: 'ci', scopes: ['infer'] })
    expect(res.statusCode, res.body).toBe(201)
    const created = res.json()
    expect(created.key).toMatch(/^hx_[0-9A-Za-z]{36}$/)
    expect(created.prefix).toBe(created.key.slice(0, 7))
    expect(created.last4).toBe(created.key.slice(-4))
    expect((await infer(created.key)).statusCode).toBe(200)
    const load = await suite.d.app.inject({
      method: 'POST',
      url: '/v2/repository/models/add/load',
      headers: bearer(created.key),
    })
    expect(load.statusCode).toBe(403)
    expect(load.headers['www-authenticate']).toContain('insufficient_scope')
    // A KServe client reads the metadata and readiness of what it calls; the repository index stays closed.
    for (const url of ['/v2/models/add', '/v2/models/add/ready', '/v2/models/add/versions/1']) {
      const read = await suite.d.app.inject({ method: 'GET', url, headers: bearer(created.key) })
      expect(read.statusCode, url).toBe(200)
    }
    const index = await suite.d.app.inject({
      method: 'POST',
      url: '/v2/repository/index',
      headers: bearer(created.key),
      payload: {},
    })
    expect(index.statusCode).toBe(403)
    expect(index.json().error).toContain('models:read')
    // the list never shows the secret or its hash
    const list = await suite.d.app.inject({ method: 'GET', url: '/auth/apikeys', headers: bearer(userToken) })
    expect(list.json()).toEqual([
      expect.objectContaining({ id: created.id, prefix: created.prefix, last4: created.last4 }),
    ])
    expect(list.body).not.toContain(created.key)
    expect(list.body).not.toMatch(/[0-9a-f]{64}/)
  })

  it('per-model keys reach only their model; users cannot grant scopes they lack', async () => {
    const res = await createViaApi(userToken, { name: 'only-add', scopes: ['infer:add'] })
    const key = res.json().key
    expect((await infer(key, 'add')).statusCode).toBe(200)
    expect((await infer(key, 'other')).statusCode).toBe(403)
    const read = (url: string) => suite.d.app.inject({ method: 'GET', url, headers: bearer(key) })
    expect((await read('/v2/models/add')).json()).toMatchObject({ name: 'add' })
    expect((await read('/v2/models/add/versions/1/ready')).statusCode).toBe(200)
    const other = await read('/v2/models/other')
    expect(other.statusCode).toBe(403)
    expect(other.json().error).toBe(
      'This credential lacks the models:read scope, and may not call model other.',
    )
    expect((await createViaApi(userToken, { name: 'escalate', scopes: ['admin'] })).statusCode).toBe(403)
    expect((await createViaApi(userToken, { name: 'bad', scopes: ['root'] })).statusCode).toBe(400)
  })

  it("a key's model list narrows the metadata its infer scope reads; models:read still reads all", async () => {
    const deps = suite.d.identity.deps
    const narrowed = await createKey(deps, CLI_ACTOR, { name: 'listed', scopes: ['infer'] })
    const reader = await createKey(deps, CLI_ACTOR, { name: 'listed-reader', scopes: ['models:read'] })
    await suite.world.db.query("UPDATE api_keys SET models = ARRAY['add'] WHERE id = ANY($1)", [
      [narrowed.id, reader.id],
    ])
    const read = (key: string, url: string) =>
      suite.d.app.inject({ method: 'GET', url, headers: bearer(key) }).then((r) => r.statusCode)
    expect(await read(narrowed.key, '/v2/models/add')).toBe(200)
    expect(await read(narrowed.key, '/v2/models/other/ready')).toBe(403)
    expect((await infer(narrowed.key, 'other')).statusCode).toBe(403)
    expect(await read(reader.key, '/v2/models/other')).toBe(200)
  })

  it('admin keys reach admin routes; model load/unload is audited', async () => {
    const key = (await createViaApi(adminToken, { name: 'ops', scopes: ['admin'] })).json().key
    const load = await suite.d.app.inject({
      method: 'POST',
      url: '/v2/repository/models/add/load',
      headers: bearer(key),
    })
    expect(load.statusCode, load.body).toBe(200)
    await new Promise((r) => setTimeout(r, 200))
    const { rows } = await suite.world.db.query(
      "SELECT actor, target FROM audit_log WHERE action = 'model.load'",
    )
    expect(rows).toEqual([{ actor: expect.stringMatching(/^apikey:/), target: 'model:add' }])
  })

  it('revoke → 401 at once, with the same answer as an unknown key', async () => {
    const created = (await createViaApi(userToken, { name: 'temp', scopes: ['infer'] })).json()
    expect((await infer(created.key)).statusCode).toBe(200)
    const del = await suite.d.app.inject({
      method: 'DELETE',
      url: `/auth/apikeys/${created.id}`,
      headers: bearer(userToken),
    })
    expect(del.statusCode, del.body).toBe(200)
    expect(del.json().revoked_at).not.toBeNull()
    const revoked = await infer(created.key)
    expect(revoked.statusCode).toBe(401)
    const forged = `${created.key.slice(0, -6)}AAAAAA`
    const unknown = await infer(forged)
    expect(unknown.statusCode).toBe(401)
    expect(unknown.json()).toEqual(revoked.json())
  })

  it('rotate: both secrets work during the grace period, only the new one after it', async () => {
    const created = (await createViaApi(userToken, { name: 'rotating', scopes: ['infer'] })).json()
    const rotated = await suite.d.app.inject({
      method: 'POST',
      url: `/auth/apikeys/${created.id}/rotate`,
      payload: { grace_seconds: 2 },
      headers: bearer(userToken),
    })
    expect(rotated.statusCode, rotated.body).toBe(200)
    const next = rotated.json()
    expect(next.id).toBe(created.id)
    expect(next.key).not.toBe(created.key)
    expect((await infer(created.key)).statusCode).toBe(200)
    expect((await infer(next.key)).statusCode).toBe(200)
    await new Promise((r) => setTimeout(r, 2100))
    expect((await infer(created.key)).statusCode).toBe(401)
    expect((await infer(next.key)).statusCode).toBe(200)
    // usage follows the key id across the rotation
    await new Promise((r) => setTimeout(r, 200))
    const usage = await suite.d.app.inject({
      method: 'GET',
      url: `/auth/apikeys/${created.id}/usage`,
      headers: bearer(userToken),
    })
    expect(usage.statusCode, usage.body).toBe(200)
    // 3 served requests; the refused old secret never reached the key
    expect(usage.json().totals.requests).toBe(3)
    expect(usage.json().totals.errors).toBe(0)
    expect(usage.json().last_used_at).not.toBeNull()
  })

  it('a key limited to N requests/minute gets exactly N successes, then 429 with RateLimit headers', async () => {
    const key = (
      await createViaApi(userToken, { name: 'limited', scopes: ['infer'], rate_limit_per_min: 5 })
    ).json().key
    const results = []
    for (let i = 0; i < 8; i++) results.push(await infer(key))
    expect(results.map((r) => r.statusCode)).toEqual([200, 200, 200, 200, 200, 429, 429, 429])
    expect(results[0].headers['ratelimit-policy']).toContain('"per-key";q=5;w=60')
    expect(results[0].headers.ratelimit).toMatch(/^"per-key";r=4;t=\d+$/)
    expect(results[5].headers.ratelimit).toMatch(/^"per-key";r=0;t=\d+$/)
    expect(Number(results[5].headers['retry-after'])).toBeGreaterThan(0)
  })

  it('a daily request quota and an items quota hold', async () => {
    const key = (
      await createViaApi(userToken, {
        name: 'quota',
        scopes: ['infer'],
        quota_requests: 3,
        quota_period: 'day',
      })
    ).json()
    const codes = []
    for (let i = 0; i < 4; i++) codes.push((await infer(key.key)).statusCode)
    expect(codes).toEqual([200, 200, 200, 429])
    const itemsKey = (
      await createViaApi(userToken, {
        name: 'items',
        scopes: ['infer'],
        quota_items: 2,
        quota_period: 'month',
      })
    ).json()
    const two = {
      inputs: INFER_BODY.inputs.map((i) => ({ ...i, shape: [2, 4], data: [...i.data, ...i.data] })),
    }
    const ok = await suite.d.app.inject({
      method: 'POST',
      url: '/v2/models/add/infer',
      payload: two,
      headers: bearer(itemsKey.key),
    })
    expect(ok.statusCode, ok.body).toBe(200)
    expect((await infer(itemsKey.key)).statusCode).toBe(429)
    await new Promise((r) => setTimeout(r, 200))
    const usage = await suite.d.app.inject({
      method: 'GET',
      url: `/auth/apikeys/${itemsKey.id}/usage`,
      headers: bearer(userToken),
    })
    expect(usage.json().quota).toMatchObject({ period: 'month', items: 2, used_items: 2 })
    expect(
      (await createViaApi(userToken, { name: 'q', scopes: ['infer'], quota_requests: 3 })).statusCode,
    ).toBe(400)
  })

  it('other users cannot see, rotate, revoke or read usage of a key (404, not 403)', async () => {
    const mine = await createKey(suite.d.identity.deps, CLI_ACTOR, { name: 'svc', scopes: ['infer'] })
    expect(mine.user_id).toBeNull()
    for (const [method, url] of [
      ['DELETE', `/auth/apikeys/${mine.id}`],
      ['POST', `/auth/apikeys/${mine.id}/rotate`],
      ['GET', `/auth/apikeys/${mine.id}/usage`],
    ] as const) {
      const res = await suite.d.app.inject({ method, url, headers: bearer(userToken) })
      expect(res.statusCode, url).toBe(404)
    }
    // a service key (no user) may infer but has no account
    expect(
      (await suite.d.app.inject({ method: 'GET', url: '/auth/me', headers: bearer(mine.key) })).statusCode,
    ).toBe(403)
    expect(
      (
        await suite.d.app.inject({
          method: 'DELETE',
          url: '/auth/apikeys/not-a-uuid',
          headers: bearer(userToken),
        })
      ).statusCode,
    ).toBe(400)
    // admins see every key
    const all = await suite.d.app.inject({
      method: 'GET',
      url: '/auth/apikeys?all=true&include_revoked=true',
      headers: bearer(adminToken),
    })
    expect(all.json().map((k: { id: string }) => k.id)).toContain(mine.id)
  })

  it('expired keys stop working; rotation of a revoked key is refused', async () => {
    const key = await createKey(suite.d.identity.deps, CLI_ACTOR, {
      name: 'short',
      scopes: ['infer'],
      expiresAt: new Date(Date.now() + 1000),
    })
    expect((await infer(key.key)).statusCode).toBe(200)
    await new Promise((r) => setTimeout(r, 1100))
    expect((await infer(key.key)).statusCode).toBe(401)
    await expect(
      createKey(suite.d.identity.deps, CLI_ACTOR, {
        name: 'past',
        scopes: ['infer'],
        expiresAt: new Date(0),
      }),
    ).rejects.toThrow(/future/)
    await expect(
      createKey(suite.d.identity.deps, CLI_ACTOR, { name: ' ', scopes: ['infer'] }),
    ).rejects.toThrow(/name/)
    await expect(
      createKey(suite.d.identity.deps, CLI_ACTOR, { name: 'x', scopes: ['infer'], rateLimitPerMin: 0 }),
    ).rejects.toThrow(/positive/)
    const revoked = await createKey(suite.d.identity.deps, CLI_ACTOR, { name: 'gone', scopes: ['infer'] })
    await suite.d.app.inject({
      method: 'DELETE',
      url: `/auth/apikeys/${revoked.id}`,
      headers: bearer(adminToken),
    })
    await expect(rotateKey(suite.d.identity.deps, CLI_ACTOR, revoked.id)).rejects.toMatchObject({
      code: 'NOT_FOUND',
    })
    await expect(rotateKey(suite.d.identity.deps, CLI_ACTOR, key.id, { graceSeconds: -1 })).rejects.toThrow(
      /grace/,
    )
  })

  it('a demoted administrator loses admin rights at once, even with a token minted before', async () => {
    const loadAs = (token: string) =>
      suite.d.app.inject({ method: 'POST', url: '/v2/repository/models/add/load', headers: bearer(token) })
    expect((await loadAs(adminToken)).statusCode).toBe(200)
    await suite.world.db.query("UPDATE users SET role = 'user' WHERE email = 'root@example.test'")
    expect((await loadAs(adminToken)).statusCode).toBe(403)
    expect(
      (await suite.d.app.inject({ method: 'GET', url: '/auth/me', headers: bearer(adminToken) })).json().role,
    ).toBe('user')
  })

  it('quota periods are UTC days and months', () => {
    const t = new Date('2026-03-31T23:59:30Z')
    expect(periodStart('day', t).toISOString()).toBe('2026-03-31T00:00:00.000Z')
    expect(periodStart('month', t).toISOString()).toBe('2026-03-01T00:00:00.000Z')
    expect(secondsToPeriodEnd('day', t)).toBe(30)
    expect(secondsToPeriodEnd('month', t)).toBe(30)
  })
})
