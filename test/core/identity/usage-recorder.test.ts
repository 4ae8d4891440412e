import { createHash } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import { UsageRecorder } from '../../../src/core/identity/usage-recorder.js'
import type { DatabasePool } from '../../../src/state/db/pool.js'
import { apiKeys, users } from '../../../src/state/db/repositories/index.js'
import { databaseTargets, useMigratedDatabase } from '../../state/db/database-targets.js'

describe.each(databaseTargets())('UsageRecorder against the %s database', (kind) => {
  const database = useMigratedDatabase(kind)
  let pool: DatabasePool
  beforeAll(() => {
    pool = database.pool
  })

  it('writes every buffered request row, field for field, and sums usage per key in one flush', async () => {
    const owner = await users.createUser(pool, { email: 'erin@example.com' })
    const key = await apiKeys.createApiKey(pool, {
      userId: owner.id,
      name: 'k',
      prefix: 'hx_',
      last4: 'wxyz',
      keyHash: createHash('sha256').update('k').digest('hex'),
      scopes: ['infer'],
    })
    const recorder = new UsageRecorder(pool, undefined, 60_000)
    const at = new Date('2026-11-26T10:00:00.123Z')
    recorder.record({
      served: true,
      at,
      requestId: 'req-1\nline2\r',
      userId: owner.id,
      apiKeyId: key.id,
      method: 'POST',
      route: '/v2/models/:model/infer',
      model: 'cls',
      modelVersion: '2',
      status: 200,
      durationMs: 1.25,
      items: 8,
      tokens: 3,
      ip: '::1',
      userAgent: 'helix-bench "quoted" \\ back,slash {brace} ünï\ttab \\N',
    })
    recorder.record({
      served: false,
      requestId: 'req-2',
      apiKeyId: key.id,
      method: 'GET',
      route: '/v2',
      status: 429,
      durationMs: 0.5,
    })
    recorder.record({
      served: false,
      requestId: 'req-3',
      method: 'GET',
      route: '/v2/health/live',
      status: 200,
      durationMs: 0.1,
      ip: '127.0.0.1',
    })
    await recorder.close()

    const { rows } = await pool.query<Record<string, unknown>>(
      `SELECT request_id, user_id, api_key_id, method, route, model, model_version, status, duration_ms, items, tokens,
              host(ip) AS ip, user_agent, at FROM request_log ORDER BY request_id`,
    )
    expect(rows).toHaveLength(3)
    expect(rows[0]).toMatchObject({
      request_id: 'req-1\nline2\r',
      user_id: owner.id,
      api_key_id: key.id,
      method: 'POST',
      route: '/v2/models/:model/infer',
      model: 'cls',
      model_version: '2',
      status: 200,
      duration_ms: 1.25,
      items: 8,
      tokens: 3,
      ip: '::1',
      user_agent: 'helix-bench "quoted" \\ back,slash {brace} ünï\ttab \\N',
    })
    expect((rows[0].at as Date).toISOString()).toBe(at.toISOString())
    // Absent fields: NULL, counts 0, the time of the flush.
    expect(rows[1]).toMatchObject({
      request_id: 'req-2',
      user_id: null,
      model: null,
      items: 0,
      tokens: 0,
      ip: null,
    })
    expect(Math.abs((rows[1].at as Date).getTime() - Date.now())).toBeLessThan(60_000)
    expect(rows[2]).toMatchObject({
      request_id: 'req-3',
      api_key_id: null,
      ip: '127.0.0.1',
      user_agent: null,
    })

    const usage = await pool.query<{ requests: number; errors: number; items: number }>(
      'SELECT requests::int, errors::int, items::int FROM api_key_usage WHERE key_id = $1',
      [key.id],
    )
    // Two requests on the key: one served with 8 items, one refused (an error, no items).
    expect(usage.rows).toEqual([{ requests: 2, errors: 1, items: 8 }])
    expect((await apiKeys.findApiKeyById(pool, key.id))?.last_used_at).toBeInstanceOf(Date)
  })

  it('a failed flush loses only that batch and is logged without its contents', async () => {
    const errors: unknown[][] = []
    const recorder = new UsageRecorder(pool, { error: (...a: unknown[]) => errors.push(a) } as never, 60_000)
    recorder.record({
      served: false,
      requestId: 'bad-ip',
      method: 'GET',
      route: '/',
      status: 200,
      durationMs: 1,
      ip: 'not an ip',
    })
    await recorder.flush()
    recorder.record({
      served: false,
      requestId: 'after',
      method: 'GET',
      route: '/',
      status: 200,
      durationMs: 1,
    })
    await recorder.close()
    expect(errors).toHaveLength(1)
    expect(JSON.stringify(errors[0][0] && (errors[0][0] as { requests: number }).requests)).toBe('1')
    const ids = (
      await pool.query<{ request_id: string }>("SELECT request_id FROM request_log WHERE route = '/'")
    ).rows
    expect(ids.map((r) => r.request_id)).toEqual(['after'])
  })
})
