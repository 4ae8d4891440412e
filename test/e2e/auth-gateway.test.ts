import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type Daemon,
  daemon,
  type IdentityWorld,
  INFER_BODY,
  identityWorld,
} from '../core/identity/identity-harness.js'
import { type RedisHandle, startRedis } from '../core/limits/redis-server.js'
import { runHelix, runHelixJson } from '../helpers/cli.js'
import { hasTool } from '../helpers/tools.js'

interface Listening {
  d: Daemon
  url: string
}

async function listen(world: IdentityWorld, overrides: Record<string, unknown> = {}): Promise<Listening> {
  const d = await daemon(world, overrides)
  const url = await d.app.listen({ host: '127.0.0.1', port: 0 })
  return { d, url }
}

async function infer(base: string, key: string, model = 'add'): Promise<Response> {
  return fetch(`${base}/v2/models/${model}/infer`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(INFER_BODY),
  })
}

describe.skipIf(!hasTool('redis-server'))(
  'API keys from the CLI against real daemons over HTTP (PostgreSQL + Redis)',
  () => {
    let world: IdentityWorld
    let redis: RedisHandle
    let a: Listening
    let b: Listening
    let env: Record<string, string | undefined>
    beforeAll(async () => {
      world = await identityWorld()
      redis = await startRedis()
      env = world.database.env
      const shared = {
        redis: { url: redis.url },
        rate_limit: { per_key_per_min: 10_000, per_ip_per_min: 100_000, auth_per_ip_per_min: 1000 },
      }
      a = await listen(world, shared)
      b = await listen(world, shared)
    })
    afterAll(async () => {
      await a?.d.close()
      await b?.d.close()
      await redis?.stop()
      await world?.teardown()
    })

    it('`helix apikeys create --scopes infer --json` prints the key once; it infers and gets 403 on admin routes', async () => {
      const created = await runHelixJson<{
        id: string
        key: string
        prefix: string
        last4: string
        scopes: string[]
      }>(['apikeys', 'create', '--name', 'ci', '--scopes', 'infer'], { env })
      expect(created.key).toMatch(/^hx_/)
      expect(created.scopes).toEqual(['infer'])
      const ok = await infer(a.url, created.key)
      expect(ok.status).toBe(200)
      expect((await ok.json()).outputs[0].data).toEqual([11, 22, 33, 44])
      const admin = await fetch(`${a.url}/v2/repository/models/add/unload`, {
        method: 'POST',
        headers: { authorization: `Bearer ${created.key}` },
      })
      expect(admin.status).toBe(403)
      const list = await runHelix(['apikeys', 'list'], { env })
      expect(list.stdout).toContain(`${created.prefix}…${created.last4}`)
      expect(list.stdout).not.toContain(created.key)
      const human = await runHelix(['apikeys', 'create', '--name', 'h', '--scopes', 'models:read'], { env })
      expect(human.stdout).toMatch(/only time the key is shown/)
    })

    it('after `helix apikeys revoke` the key gets 401 at once on both daemons', async () => {
      const created = await runHelixJson<{ id: string; key: string }>(
        ['apikeys', 'create', '--name', 'rev', '--scopes', 'infer'],
        { env },
      )
      expect((await infer(a.url, created.key)).status).toBe(200)
      expect((await infer(b.url, created.key)).status).toBe(200)
      await runHelixJson(['apikeys', 'revoke', created.id], { env })
      const ra = await infer(a.url, created.key)
      expect(ra.status).toBe(401)
      expect(ra.headers.get('www-authenticate')).toContain('Bearer')
      expect((await infer(b.url, created.key)).status).toBe(401)
    })

    it('after `helix apikeys rotate` both secrets work during grace, only the new one after it', async () => {
      const created = await runHelixJson<{ id: string; key: string }>(
        ['apikeys', 'create', '--name', 'rot', '--scopes', 'infer'],
        { env },
      )
      const rotated = await runHelixJson<{ id: string; key: string; grace_until: string }>(
        ['apikeys', 'rotate', created.id, '--grace', '3s'],
        { env },
      )
      expect(rotated.id).toBe(created.id)
      expect((await infer(a.url, created.key)).status).toBe(200)
      expect((await infer(b.url, rotated.key)).status).toBe(200)
      await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(rotated.grace_until) - Date.now()) + 200))
      expect((await infer(a.url, created.key)).status).toBe(401)
      expect((await infer(b.url, rotated.key)).status).toBe(200)
      const bad = await runHelix(['apikeys', 'rotate', created.id, '--grace', 'soon', '--json'], { env })
      expect(bad.exitCode).toBe(2)
      expect(JSON.parse(bad.stderr).error.code).toBe('INVALID_INPUT')
    })

    it('a key limited to N/min gets exactly N successes across two daemons sharing Redis, then 429 + headers', async () => {
      const n = 20
      const created = await runHelixJson<{ key: string }>(
        ['apikeys', 'create', '--name', 'lim', '--scopes', 'infer', '--rate-limit', String(n)],
        { env },
      )
      // A concurrent burst of 3N, alternating between the two daemons.
      const responses = await Promise.all(
        Array.from({ length: 3 * n }, (_, i) => infer(i % 2 === 0 ? a.url : b.url, created.key)),
      )
      const statuses = responses.map((r) => r.status)
      expect(statuses.filter((s) => s === 200)).toHaveLength(n)
      expect(statuses.filter((s) => s === 429)).toHaveLength(2 * n)
      const refused = responses.find((r) => r.status === 429) as Response
      expect(refused.headers.get('ratelimit-policy')).toContain(`"per-key";q=${n};w=60`)
      expect(refused.headers.get('ratelimit')).toMatch(/^"per-key";r=0;t=\d+$/)
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0)
      const served = responses.find((r) => r.status === 200) as Response
      expect(served.headers.get('ratelimit')).toMatch(/^"per-key";r=\d+;t=\d+$/)
    })

    it('`helix audit --since 1h --json` lists the key events with who and what', async () => {
      const entries = await runHelixJson<Array<{ action: string; actor: string; target: string }>>(
        ['audit', '--since', '1h'],
        { env },
      )
      const actions = entries.map((e) => e.action)
      expect(actions).toEqual(expect.arrayContaining(['apikey.create', 'apikey.revoke', 'apikey.rotate']))
      expect(entries.find((e) => e.action === 'apikey.revoke')).toMatchObject({
        actor: 'cli',
        target: expect.stringMatching(/^apikey:/),
      })
      const human = await runHelix(['audit', '--since', '1h', '--action', 'apikey.revoke'], { env })
      expect(human.stdout).toMatch(/apikey\.revoke\s+cli/)
      const bad = await runHelix(['audit', '--since', 'yesterday-ish', '--json'], { env })
      expect(bad.exitCode).toBe(2)
    })
  },
)
