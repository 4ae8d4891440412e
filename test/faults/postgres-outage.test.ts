import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { status } from '@grpc/grpc-js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateApiKey } from '../../src/core/identity/api-key-format.js'
import { CLI_ACTOR, revokeKey } from '../../src/core/identity/api-keys.js'
import type { IdentityDeps } from '../../src/core/identity/identity-deps.js'
import { UsageRecorder } from '../../src/core/identity/usage-recorder.js'
import { USAGE_SPOOL_DIR, UsageSpool } from '../../src/core/identity/usage-spool.js'
import { startEmbedded, stopEmbedded } from '../../src/provision/postgres/embedded-server.js'
import { type IdentityWorld, INFER_BODY, identityWorld } from '../core/identity/identity-harness.js'
import { client } from '../grpc/fixtures.js'
import { cliKey, type OutageDaemon, sleep, startOutageDaemon, steadyLoad } from './outage-harness.js'

/**
 * Issue 17: a daemon rides out its PostgreSQL stopping for 10 s. The daemon runs on a PostgreSQL of
 * its own (the identity world's embedded server, stopped and started with pg_ctl), never on one
 * another test file uses.
 */
describe('PostgreSQL stopped for 10 s under steady load (real embedded PostgreSQL, real daemon)', () => {
  let world: IdentityWorld
  let daemon: OutageDaemon
  let hot: { id: string; key: string }
  let admin: string
  let revoked: { id: string; key: string }
  beforeAll(async () => {
    world = await identityWorld()
    hot = await cliKey(world, { name: 'hot', scopes: ['infer'] })
    revoked = await cliKey(world, { name: 'revoked', scopes: ['infer'] })
    admin = (await cliKey(world, { name: 'admin', scopes: ['admin'] })).key
    daemon = await startOutageDaemon(world, {
      rate_limit: { per_key_per_min: 100_000, per_ip_per_min: 100_000, auth_per_ip_per_min: 1000 },
    })
  })
  afterAll(async () => {
    // Started again even when the test failed while it was down, so the world tears down cleanly.
    await startEmbedded(world.database.home, world.database.config).catch(() => undefined)
    await daemon?.stop()
    await world?.teardown()
  })

  const post = (path: string, body: unknown, key?: string) =>
    fetch(`${daemon.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify(body),
    })
  const infer = (key: string) => post('/v2/models/add/infer', INFER_BODY, key)
  /** A key's request-log rows and the requests its usage counters sum to. */
  const rowsOfKey = async (keyId: string) => {
    const log = await world.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM request_log WHERE api_key_id = $1',
      [keyId],
    )
    const usage = await world.db.query<{ n: number }>(
      'SELECT coalesce(sum(requests), 0)::int AS n FROM api_key_usage WHERE key_id = $1',
      [keyId],
    )
    return { log: log.rows[0].n, usage: usage.rows[0].n }
  }
  const credentials = { email: 'outage@example.com', password: 'a long passphrase for the outage test' }

  it('serves cached keys, refuses auth writes with 503, and writes every usage row exactly once afterwards', async () => {
    // Before: the keys are looked up once (and cached), sign-up and key creation work.
    expect((await infer(hot.key)).status).toBe(200)
    expect((await infer(admin)).status).toBe(200)
    expect((await infer(revoked.key)).status).toBe(200)
    expect((await post('/auth/register', credentials)).status).toBe(201)
    expect((await post('/auth/apikeys', { name: 'before', scopes: ['infer'] }, admin)).status).toBe(201)
    // A revocation the daemon hears of (LISTEN/NOTIFY) evicts the key from its cache.
    await revokeKey({ db: world.db, config: world.config } as IdentityDeps, CLI_ACTOR, revoked.id)
    await sleep(200)
    expect((await infer(revoked.key)).status).toBe(401)

    const load = steadyLoad(daemon.url, () => hot.key)
    load.phase = 'up'
    await sleep(3000)

    load.phase = 'stopping'
    await stopEmbedded(world.database.home, world.database.config)
    load.phase = 'down'
    const downSince = Date.now()
    await sleep(500)
    // What needs the database is refused with a clear 503, not a 500 and not a 401.
    const register = await post('/auth/register', { ...credentials, email: 'during@example.com' })
    const login = await post('/auth/login', credentials)
    const create = await post('/auth/apikeys', { name: 'during', scopes: ['infer'] }, admin)
    const unknown = await infer(generateApiKey().key)
    const answers = { register, login, create, unknown }
    for (const [what, res] of Object.entries(answers)) {
      const body = (await res.json()) as { error: string }
      expect({ what, status: res.status, error: body.error }).toEqual({
        what,
        status: 503,
        error: 'The database is unavailable; try again in a few seconds.',
      })
    }
    // gRPC maps the same error to UNAVAILABLE.
    const grpcAuth = client(daemon.grpcTarget, 'helix.auth.v1.AuthService')
    try {
      const failed = await grpcAuth.failure('Login', credentials)
      expect({ code: failed.code, details: failed.details }).toEqual({
        code: status.UNAVAILABLE,
        details: 'The database is unavailable; try again in a few seconds.',
      })
    } finally {
      grpcAuth.close()
    }
    // The revocation was seen (its look-up after the eviction cached the revoked row): still refused.
    expect((await infer(revoked.key)).status).toBe(401)
    await sleep(10_000 - (Date.now() - downSince))

    load.phase = 'starting'
    await startEmbedded(world.database.home, world.database.config)
    load.phase = 'back'
    await sleep(2000)
    const sent = await load.stop()

    // Every inference request of the load was served, before, during and after the outage.
    const byPhase = (phase: string) => sent.filter((s) => s.phase === phase)
    expect([...new Set(sent.map((s) => s.status))]).toEqual([200])
    expect(byPhase('up').length).toBeGreaterThan(20)
    expect(byPhase('down').length).toBeGreaterThan(50)
    expect(byPhase('back').length).toBeGreaterThan(10)
    expect(Math.max(...byPhase('down').map((s) => s.ms))).toBeLessThan(2000)

    // Back: auth writes work again.
    expect((await post('/auth/login', credentials)).status).toBe(200)
    expect((await post('/auth/apikeys', { name: 'after', scopes: ['infer'] }, admin)).status).toBe(201)

    // The usage and request-log rows kept meanwhile are written, none lost and none doubled: the
    // key's rows equal the requests the client sent with it (one before the load, then the load).
    const expected = 1 + sent.length
    const counts = () => rowsOfKey(hot.id)
    const deadline = Date.now() + 10_000
    let seen = await counts()
    while ((seen.log < expected || seen.usage < expected) && Date.now() < deadline) {
      await sleep(200)
      seen = await counts()
    }
    expect(seen).toEqual({ log: expected, usage: expected })
    // Request ids are unique: no row was written twice.
    const ids = await world.db.query<{ n: number; distinct_ids: number }>(
      'SELECT count(*)::int AS n, count(DISTINCT request_id)::int AS distinct_ids FROM request_log WHERE api_key_id = $1',
      [hot.id],
    )
    expect(ids.rows[0].distinct_ids).toBe(ids.rows[0].n)
    // And nothing more arrives later.
    await sleep(1500)
    expect(await counts()).toEqual({ log: expected, usage: expected })

    const lines = await daemon.logLines()
    expect(lines.filter((l) => String(l.msg).startsWith('database unavailable: keeping usage'))).toHaveLength(
      1,
    )
    expect(lines.some((l) => String(l.msg).startsWith('database answers again'))).toBe(true)
  })
  it('keeps at most maxKeptRows request-log rows while the database is down, counting the dropped ones', async () => {
    const dropped: number[] = []
    const recorder = new UsageRecorder(world.db, undefined, 60_000, 5000, 10)
    recorder.onDropped = (rows) => dropped.push(rows)
    const row = (i: number) => ({
      served: true,
      requestId: `bounded-${i}`,
      apiKeyId: hot.id,
      method: 'POST',
      route: '/v2/models/:model/infer',
      status: 200,
      durationMs: 1,
      items: 1,
    })
    const usage = async () =>
      (
        await world.db.query<{ n: number }>(
          'SELECT coalesce(sum(requests), 0)::int AS n FROM api_key_usage WHERE key_id = $1',
          [hot.id],
        )
      ).rows[0].n
    const before = await usage()
    await stopEmbedded(world.database.home, world.database.config)
    try {
      for (let i = 0; i < 15; i++) recorder.record(row(i))
      await recorder.flush()
      for (let i = 15; i < 25; i++) recorder.record(row(i))
      await recorder.flush()
      expect(recorder.pending).toBe(10)
    } finally {
      await startEmbedded(world.database.home, world.database.config)
    }
    await recorder.close()
    expect(dropped.reduce((a, b) => a + b, 0)).toBe(15)
    const { rows } = await world.db.query<{ request_id: string }>(
      "SELECT request_id FROM request_log WHERE request_id LIKE 'bounded-%' ORDER BY at, request_id",
    )
    // The newest ten rows survive; the usage counters, a few numbers per key, are all kept.
    expect(rows.map((r) => r.request_id).sort()).toEqual(
      Array.from({ length: 10 }, (_, i) => `bounded-${i + 15}`).sort(),
    )
    expect((await usage()) - before).toBe(25)
  })

  it('a daemon stopped while the database is down saves what it kept; the next one to start writes it once', async () => {
    const spooled = await cliKey(world, { name: 'spooled', scopes: ['infer'] })
    const spoolDir = join(world.database.home.dataDir, USAGE_SPOOL_DIR)
    const counts = () => rowsOfKey(spooled.id)
    // A fresh daemon: the one before heard the last outage, and caches keys again only once its
    // LISTEN connection is back. The key is looked up (and cached) while the database answers, then
    // 12 requests come during the outage.
    await daemon.stop()
    daemon = await startOutageDaemon(world, {
      rate_limit: { per_key_per_min: 100_000, per_ip_per_min: 100_000, auth_per_ip_per_min: 1000 },
    })
    expect((await infer(spooled.key)).status).toBe(200)
    await stopEmbedded(world.database.home, world.database.config)
    let file: string
    try {
      for (let i = 0; i < 12; i++) expect((await infer(spooled.key)).status).toBe(200)
      await daemon.stop()
      const saved = (await daemon.logLines()).find((l) =>
        String(l.msg).startsWith('database unavailable at shutdown: usage and request log saved'),
      )
      expect(saved).toMatchObject({ requests: expect.any(Number) })
      file = String(saved?.file)
      expect(dirname(file)).toBe(spoolDir)
      // Request-log rows name users and client addresses: the file is the owner's alone.
      expect((await stat(file)).mode & 0o777).toBe(0o600)
    } finally {
      await startEmbedded(world.database.home, world.database.config)
    }
    const copy = await readFile(file)
    daemon = await startOutageDaemon(world, {
      rate_limit: { per_key_per_min: 100_000, per_ip_per_min: 100_000, auth_per_ip_per_min: 1000 },
    })
    const deadline = Date.now() + 10_000
    while ((await counts()).log < 13 && Date.now() < deadline) await sleep(100)
    expect(await counts()).toEqual({ log: 13, usage: 13 })
    expect(await readdir(spoolDir)).toEqual([])
    // A daemon that stopped between the commit and deleting the file leaves it behind: a replay of it
    // (here by a recorder of this process, as the next start would) writes nothing twice.
    await writeFile(file, copy)
    const recorder = new UsageRecorder(world.db, undefined, 60_000)
    recorder.spool = new UsageSpool(spoolDir)
    expect(await recorder.replaySpool()).toBe(0)
    await recorder.close()
    expect(await readdir(spoolDir)).toEqual([])
    expect(await counts()).toEqual({ log: 13, usage: 13 })
  })
})
