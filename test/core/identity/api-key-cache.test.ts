import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ApiKeyCache } from '../../../src/core/identity/api-key-cache.js'
import { CLI_ACTOR, createKey, revokeKey, rotateKey } from '../../../src/core/identity/api-keys.js'
import { hashSecret } from '../../../src/core/identity/secret-hash.js'
import * as repos from '../../../src/state/db/repositories/index.js'
import {
  bearer,
  type Daemon,
  daemon,
  type IdentityWorld,
  INFER_BODY,
  identityWorld,
} from './identity-harness.js'

describe('API key cache evicted by database change announcements (real PostgreSQL LISTEN/NOTIFY)', () => {
  let world: IdentityWorld
  let a: Daemon
  let b: Daemon
  beforeAll(async () => {
    world = await identityWorld()
    a = await daemon(world)
    b = await daemon(world)
  })
  afterAll(async () => {
    await a?.close()
    await b?.close()
    await world?.teardown()
  })

  const infer = (d: Daemon, key: string) =>
    d.app.inject({ method: 'POST', url: '/v2/models/add/infer', payload: INFER_BODY, headers: bearer(key) })

  it('is live after the start-up probe and serves repeated look-ups from memory', async () => {
    expect(a.identity.deps.apiKeyCache?.active).toBe(true)
    const key = await createKey(a.identity.deps, CLI_ACTOR, { name: 'hot', scopes: ['infer'] })
    expect((await infer(a, key.key)).statusCode).toBe(200)
    expect(a.identity.deps.apiKeyCache?.get(hashSecret(key.key))?.id).toBe(key.id)
  })

  it('revocation on one replica evicts the key on every replica before the next request', async () => {
    const key = await createKey(a.identity.deps, CLI_ACTOR, { name: 'shared', scopes: ['infer'] })
    expect((await infer(a, key.key)).statusCode).toBe(200)
    expect((await infer(b, key.key)).statusCode).toBe(200)
    await revokeKey(a.identity.deps, CLI_ACTOR, key.id)
    // The announcement is asynchronous: give it the time of one round trip on loopback.
    await new Promise((r) => setTimeout(r, 50))
    expect(b.identity.deps.apiKeyCache?.get(hashSecret(key.key))).toBeUndefined()
    expect((await infer(a, key.key)).statusCode).toBe(401)
    expect((await infer(b, key.key)).statusCode).toBe(401)
  })

  it('rotation and direct SQL changes are announced too; last-used stamps are not', async () => {
    const key = await createKey(a.identity.deps, CLI_ACTOR, { name: 'rot', scopes: ['infer'] })
    expect((await infer(b, key.key)).statusCode).toBe(200)
    await repos.apiKeys.touchApiKey(world.db, key.id)
    await new Promise((r) => setTimeout(r, 50))
    expect(b.identity.deps.apiKeyCache?.get(hashSecret(key.key))).toBeDefined()
    const next = await rotateKey(a.identity.deps, CLI_ACTOR, key.id, { graceSeconds: 0 })
    await new Promise((r) => setTimeout(r, 50))
    expect((await infer(b, key.key)).statusCode).toBe(401)
    expect((await infer(b, next.key)).statusCode).toBe(200)
    await world.db.query("UPDATE api_keys SET scopes = '{models:read}' WHERE id = $1", [key.id])
    await new Promise((r) => setTimeout(r, 50))
    expect((await infer(b, next.key)).statusCode).toBe(403)
  })

  it('refuses to cache a look-up that raced with an eviction, and expires entries', async () => {
    const cache = new ApiKeyCache(world.db, undefined, 1000)
    expect(cache.active).toBe(false)
    expect(await cache.start()).toBe(true)
    const row = { id: 'k1', via: 'current' } as never
    const stale = cache.ticket()
    cache.evict('other')
    cache.set('h1', row, stale)
    expect(cache.get('h1')).toBeUndefined()
    cache.set('h1', row, cache.ticket(), 0)
    expect(cache.size).toBe(1)
    expect(cache.get('h1', 500)).toBeDefined()
    expect(cache.get('h1', 2000)).toBeUndefined()
    // Past its TTL an entry is kept only as the fallback for a database outage, up to maxStaleMs more.
    expect(cache.stale('h1', 2000)).toBeDefined()
    expect(cache.stale('h1', 1000 + 600_001)).toBeUndefined()
    expect(cache.get('h1', 1000 + 600_001)).toBeUndefined()
    expect(cache.size).toBe(0)
    await cache.close()
    cache.set('h2', row, cache.ticket())
    expect(cache.get('h2')).toBeUndefined()
  })

  it('stops serving from memory when the listening connection dies, and comes back afresh', async () => {
    const cache = a.identity.deps.apiKeyCache!
    expect(cache.active).toBe(true)
    const hot = await createKey(a.identity.deps, CLI_ACTOR, { name: 'hot-before', scopes: ['infer'] })
    expect((await infer(a, hot.key)).statusCode).toBe(200)
    const cached = cache.size
    await world.db.query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN helix_api_keys%' AND pid <> pg_backend_pid()",
    )
    await new Promise((r) => setTimeout(r, 300))
    expect(cache.active).toBe(false)
    // Entries stay only as the stale-if-error fallback; nothing is served from memory or cached now.
    expect(cache.get(hashSecret(hot.key))).toBeUndefined()
    expect(cache.stale(hashSecret(hot.key))?.id).toBe(hot.id)
    const key = await createKey(a.identity.deps, CLI_ACTOR, { name: 'while-down', scopes: ['infer'] })
    expect((await infer(a, key.key)).statusCode).toBe(200)
    expect(cache.size).toBe(cached)
    await new Promise((r) => setTimeout(r, 5600))
    expect(cache.active).toBe(true)
    // Back live, it starts afresh: entries kept while it was off may have missed announcements.
    expect(cache.stale(hashSecret(hot.key))).toBeUndefined()
  })

  it('stays off when changes are not announced (trigger missing)', async () => {
    await world.db.query('ALTER TABLE api_keys DISABLE TRIGGER api_keys_announce_change')
    await world.db.query('DROP TRIGGER api_keys_announce_change ON api_keys')
    try {
      const cache = new ApiKeyCache(world.db, undefined)
      expect(await cache.start(300)).toBe(false)
      cache.set('h', { id: 'k' } as never, cache.ticket())
      expect(cache.get('h')).toBeUndefined()
      await cache.close()
    } finally {
      await world.db.query(`CREATE TRIGGER api_keys_announce_change
        AFTER UPDATE OF user_id, key_hash, scopes, models, rate_limit_per_min, quota_requests, quota_items, quota_period,
                        expires_at, revoked_at, rotated_from_hash, grace_until
        OR DELETE ON api_keys FOR EACH ROW EXECUTE FUNCTION helix_announce_api_key_change()`)
    }
  })
})
