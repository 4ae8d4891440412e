import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAccount } from '../../../src/core/identity/accounts.js'
import { CLI_ACTOR, createKey, revokeKey, rotateKey } from '../../../src/core/identity/api-keys.js'
import { createIdentity, type Identity } from '../../../src/core/identity/identity.js'
import { createModelService, type HelixModelService } from '../../../src/core/infer/model-service.js'
import { HelixMetrics } from '../../../src/core/metrics.js'
import { BusinessMetrics } from '../../../src/core/monitoring/business-metrics.js'
import { buildApp } from '../../../src/http/app.js'
import { httpAuthentication } from '../../../src/http/identity.js'
import { parseConfig } from '../../../src/shared/config.js'
import { bearer, type IdentityWorld, INFER_BODY, identityWorld } from '../identity/identity-harness.js'

const PASSWORD = 'correct horse battery staple'

/** The value of one series in the text format (labels in the order prom-client writes them). */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

describe('business metrics (real PostgreSQL, REST through the identity layer)', () => {
  let world: IdentityWorld
  let identity: Identity
  let service: HelixModelService
  let app: FastifyInstance
  let metrics: HelixMetrics

  beforeAll(async () => {
    world = await identityWorld()
    const config = parseConfig({
      ...structuredClone(world.config),
      rate_limit: { ...world.config.rate_limit, auth_per_ip_per_min: 10_000 },
    })
    service = await createModelService({ repositoryDir: world.database.home.modelsDir, defaultDevice: 'cpu' })
    identity = await createIdentity({ home: world.database.home, config, db: world.db, usageFlushMs: 50 })
    metrics = new HelixMetrics(service, { defaultMetrics: false })
    // As helix serve does: before the REST face takes the limiter.
    new BusinessMetrics(metrics.registry, 2).attach(identity)
    app = await buildApp({ service, metrics, auth: httpAuthentication(identity), logger: false })
    await app.ready()
  })
  afterAll(async () => {
    await app?.close()
    await identity?.close()
    await service?.close()
    await world?.teardown()
  })

  const infer = (key: string, model = 'add', body: unknown = INFER_BODY) =>
    app.inject({
      method: 'POST',
      url: `/v2/models/${model}/infer`,
      headers: bearer(key),
      payload: body as object,
    })

  it('counts requests, errors and items per key id and model, folding keys beyond the cap into other', async () => {
    const deps = identity.deps
    const k1 = await createKey(deps, CLI_ACTOR, { name: 'one', scopes: ['infer'] })
    const k2 = await createKey(deps, CLI_ACTOR, { name: 'two', scopes: ['infer'] })
    const k3 = await createKey(deps, CLI_ACTOR, { name: 'three', scopes: ['infer'] })
    expect((await infer(k1.key)).statusCode).toBe(200)
    expect((await infer(k1.key, 'other')).statusCode).toBe(200)
    expect((await infer(k2.key)).statusCode).toBe(200)
    expect((await infer(k3.key)).statusCode).toBe(200)
    expect((await infer(k1.key, 'add', { inputs: [] })).statusCode).toBe(400)
    const text = await metrics.registry.metrics()
    expect(value(text, `helix_key_requests_total{key_id="${k1.id}",model="add",outcome="ok"}`)).toBe(1)
    expect(value(text, `helix_key_requests_total{key_id="${k1.id}",model="add",outcome="error"}`)).toBe(1)
    expect(value(text, `helix_key_requests_total{key_id="${k1.id}",model="other",outcome="ok"}`)).toBe(1)
    expect(value(text, `helix_key_items_total{key_id="${k1.id}",model="add"}`)).toBe(1)
    expect(value(text, `helix_key_requests_total{key_id="${k2.id}",model="add",outcome="ok"}`)).toBe(1)
    expect(value(text, 'helix_key_requests_total{key_id="other",model="add",outcome="ok"}')).toBe(1)
    expect(text).not.toContain(k3.id)
    // Never the secret.
    for (const k of [k1, k2, k3]) expect(text).not.toContain(k.key)
    expect(value(text, 'helix_api_keys_events_total{event="created"}')).toBe(3)

    await rotateKey(deps, CLI_ACTOR, k2.id)
    await revokeKey(deps, CLI_ACTOR, k3.id)
    const after = await metrics.registry.metrics()
    expect(value(after, 'helix_api_keys_events_total{event="rotated"}')).toBe(1)
    expect(value(after, 'helix_api_keys_events_total{event="revoked"}')).toBe(1)
  })

  it('model names a client makes up never become series: failures on models never served count as (other)', async () => {
    const k = await createKey(identity.deps, CLI_ACTOR, { name: 'prober', scopes: ['infer'] })
    const made = Array.from({ length: 50 }, (_, i) => `made-up-model-${i}`)
    for (const name of made) expect((await infer(k.key, name)).statusCode).toBe(404)
    expect((await infer(k.key, 'add')).statusCode).toBe(200)
    const text = await metrics.registry.metrics()
    for (const name of made)
      expect(
        text,
        text
          .split('\n')
          .filter((l) => l.includes(name))
          .join('\n'),
      ).not.toContain(name)
    expect(value(text, `helix_key_requests_total{key_id="other",model="(other)",outcome="error"}`)).toBe(50)
  })

  it('counts sign-ups, sign-ins ok and failed', async () => {
    await createAccount(identity.deps, { email: 'ada@example.test', password: PASSWORD })
    const login = (password: string) =>
      app.inject({ method: 'POST', url: '/auth/login', payload: { email: 'ada@example.test', password } })
    expect((await login(PASSWORD)).statusCode).toBe(200)
    expect((await login('wrong password entirely')).statusCode).toBe(401)
    const text = await metrics.registry.metrics()
    expect(value(text, 'helix_users_registered_total{via="self"}')).toBe(1)
    // An administrator's account is counted apart from sign-ups.
    await createAccount(identity.deps, { email: 'bob@example.test', password: PASSWORD }, { actor: 'cli' })
    expect(value(await metrics.registry.metrics(), 'helix_users_registered_total{via="admin"}')).toBe(1)
    expect(value(text, 'helix_logins_total{outcome="ok"}')).toBe(1)
    expect(value(text, 'helix_logins_total{outcome="failed"}')).toBe(1)
  })

  it('counts rate-limit and quota refusals and shows the quota used', async () => {
    const deps = identity.deps
    const limited = await createKey(deps, CLI_ACTOR, { name: 'slow', scopes: ['infer'], rateLimitPerMin: 1 })
    expect((await infer(limited.key)).statusCode).toBe(200)
    expect((await infer(limited.key)).statusCode).toBe(429)
    const quota = await createKey(deps, CLI_ACTOR, {
      name: 'quota',
      scopes: ['infer'],
      quotaRequests: 2,
      quotaPeriod: 'day',
    })
    expect((await infer(quota.key)).statusCode).toBe(200)
    let text = await metrics.registry.metrics()
    expect(value(text, `helix_quota_used_ratio{key_id="${quota.id}"}`)).toBe(0.5)
    expect((await infer(quota.key)).statusCode).toBe(200)
    expect((await infer(quota.key)).statusCode).toBe(429)
    text = await metrics.registry.metrics()
    expect(value(text, 'helix_rate_limited_total{limit="per-key"}')).toBe(1)
    expect(value(text, 'helix_quota_rejections_total')).toBe(1)
    expect(value(text, `helix_quota_used_ratio{key_id="${quota.id}"}`)).toBe(1)
  })
})
