import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type IdentityWorld, identityWorld } from '../core/identity/identity-harness.js'
import { type RedisHandle, startRedis } from '../core/limits/redis-server.js'
import { hasTool } from '../helpers/tools.js'
import {
  cliKey,
  metricValue,
  type OutageDaemon,
  sleep,
  startOutageDaemon,
  steadyLoad,
} from './outage-harness.js'

/**
 * Issue 17: a daemon whose rate limits live in a real redis-server rides out Redis going away.
 * With the default rate_limit.on_store_error, requests-per-minute limits fail open (200, uncounted)
 * and quotas fail closed (503); every request of a steady load is counted.
 */
describe.skipIf(!hasTool('redis-server'))(
  'Redis stopped under steady load (real redis-server, real daemon)',
  () => {
    let world: IdentityWorld
    let redis: RedisHandle
    let daemon: OutageDaemon
    let plain: string
    let quota: string
    let metricsKey: string
    beforeAll(async () => {
      world = await identityWorld()
      redis = await startRedis()
      plain = (await cliKey(world, { name: 'plain', scopes: ['infer'] })).key
      quota = (
        await cliKey(world, {
          name: 'quota',
          scopes: ['infer'],
          quotaRequests: 1_000_000,
          quotaPeriod: 'day',
        })
      ).key
      metricsKey = (await cliKey(world, { name: 'metrics', scopes: ['metrics'] })).key
      daemon = await startOutageDaemon(world, {
        redis: { url: redis.url },
        rate_limit: { per_key_per_min: 100_000, per_ip_per_min: 100_000, auth_per_ip_per_min: 1000 },
      })
    })
    afterAll(async () => {
      await daemon?.stop()
      await redis?.stop()
      await world?.teardown()
    })

    const metrics = async () => {
      const res = await fetch(`${daemon.url}/metrics`, { headers: { authorization: `Bearer ${metricsKey}` } })
      expect(res.status).toBe(200)
      return res.text()
    }

    it('limits admit and quotas refuse with 503 while Redis is down, each counted; counted again once it is back', async () => {
      const load = steadyLoad(daemon.url, (i) => (i % 2 === 0 ? plain : quota))
      load.phase = 'up'
      await sleep(1500)

      load.phase = 'stopping'
      await redis.stop()
      load.phase = 'down'
      await sleep(2500)
      const duringOutage = await metrics()

      load.phase = 'restarting'
      redis = await startRedis(redis.port)
      // ioredis reconnects by itself (its backoff is at most 2 s): wait for a request counted again.
      const deadline = Date.now() + 15_000
      while (Date.now() < deadline) {
        const last = load.sent.at(-1)
        if (last && last.phase === 'restarting' && last.status === 200 && last.headers.has('ratelimit')) break
        await sleep(100)
      }
      load.phase = 'back'
      await sleep(1500)
      const sent = await load.stop()
      const after = await metrics()

      const byPhase = (phase: string) => sent.filter((s) => s.phase === phase)
      const statuses = (list: typeof sent) => [...new Set(list.map((s) => s.status))].sort()
      // Every request was answered, none hung: the 1 s command timeout bounds a check, and after the
      // connection is lost checks fail at once.
      expect(sent.filter((s) => s.status === 0)).toEqual([])
      expect(Math.max(...sent.map((s) => s.ms))).toBeLessThan(3000)
      for (const phase of ['up', 'down', 'back']) expect(byPhase(phase).length).toBeGreaterThan(20)

      // Before and after: everything counted and admitted.
      for (const phase of ['up', 'back']) {
        expect(statuses(byPhase(phase))).toEqual([200])
        expect(byPhase(phase).every((s) => s.headers.get('ratelimit-policy')?.includes('"per-key"'))).toBe(
          true,
        )
      }
      // Down: the per-minute limits fail open, the quota fails closed with a clear 503.
      const down = byPhase('down')
      expect(statuses(down.filter((s) => s.key === plain))).toEqual([200])
      expect(statuses(down.filter((s) => s.key === quota))).toEqual([503])
      expect(down.every((s) => !s.headers.has('ratelimit'))).toBe(true)
      const refusal = JSON.parse(down.find((s) => s.key === quota)?.body ?? '{}') as { error: string }
      expect(refusal.error).toMatch(
        /quota-day .*store does not answer.*on_store_error\.quotas is fail-closed/,
      )

      // No 5xx anywhere besides the fail-closed 503s of the quota key.
      const serverErrors = sent.filter((s) => s.status >= 500)
      expect(serverErrors.every((s) => s.key === quota && s.status === 503)).toBe(true)
      expect(sent.every((s) => s.status === 200 || s.status === 503)).toBe(true)

      // The metric counts every check the store did not answer, by policy and outcome.
      const refused = serverErrors.length
      expect(
        metricValue(after, 'helix_rate_limit_store_errors_total', {
          policy: 'quota-day',
          outcome: 'refused',
        }),
      ).toBe(refused)
      expect(
        metricValue(duringOutage, 'helix_rate_limit_store_errors_total', {
          policy: 'per-key',
          outcome: 'admitted',
        }),
      ).toBeGreaterThan(0)
      // Each request sent while Redis was down checked per-ip and per-key (admitted uncounted) before
      // its quota; requests in flight when it stopped or came back add a few more.
      for (const policy of ['per-ip', 'per-key'])
        expect(
          metricValue(after, 'helix_rate_limit_store_errors_total', { policy, outcome: 'admitted' }),
        ).toBeGreaterThanOrEqual(down.length)

      // The limits live in Redis again.
      const probe = new Redis(redis.url)
      try {
        expect((await probe.keys('helix:rl:per-key:*')).length).toBeGreaterThan(0)
      } finally {
        probe.disconnect()
      }

      // One warning for the outage (not one per request) and one line when Redis answers again.
      const lines = await daemon.logLines()
      const warnings = lines.filter((l) => String(l.msg).startsWith('rate limiter store (Redis) unavailable'))
      const back = lines.filter((l) => String(l.msg).startsWith('rate limiter store (Redis) answers again'))
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toMatchObject({ level: 40, limits: 'fail-open', quotas: 'fail-closed' })
      expect(back).toHaveLength(1)
    })
  },
)
