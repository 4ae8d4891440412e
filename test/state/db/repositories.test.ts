import { createHash, randomBytes } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import { isHelixError } from '../../../src/shared/errors.js'
import type { DatabasePool } from '../../../src/state/db/pool.js'
import {
  apiKeys,
  audit,
  emailTokens,
  refreshTokens,
  requestLog,
  revokedTokens,
  usage,
  users,
} from '../../../src/state/db/repositories/index.js'
import { databaseTargets, useMigratedDatabase } from './database-targets.js'

const hash = (s: string) => createHash('sha256').update(s).digest('hex')
const token = () => randomBytes(16).toString('base64url')
const inMinutes = (m: number) => new Date(Date.now() + m * 60_000)

describe.each(databaseTargets())('repositories against the %s database', (kind) => {
  const database = useMigratedDatabase(kind)
  let pool: DatabasePool
  beforeAll(() => {
    pool = database.pool
  })

  it('users: unique e-mail regardless of case, profile changes, password stamp, disable, delete', async () => {
    const alice = await users.createUser(pool, {
      email: 'Alice@Example.com',
      passwordHash: '$argon2id$v=19$m=19456,t=2,p=1$x$y',
    })
    expect(alice.role).toBe('user')
    expect(alice.email_verified_at).toBeNull()
    let dup: unknown
    try {
      await users.createUser(pool, { email: 'alice@example.COM' })
    } catch (err) {
      dup = err
    }
    expect(isHelixError(dup) && dup.code).toBe('USER_EXISTS')
    expect((await users.findUserByEmail(pool, 'ALICE@example.com'))?.id).toBe(alice.id)
    expect(await users.findUserByEmail(pool, 'nobody@example.com')).toBeUndefined()

    expect(await users.markEmailVerified(pool, alice.id)).toBe(true)
    const renamed = await users.updateUser(pool, alice.id, { displayName: 'Alice', role: 'admin' })
    expect(renamed?.display_name).toBe('Alice')
    expect(renamed?.role).toBe('admin')
    expect(renamed?.email_verified_at).not.toBeNull()
    const sameMail = await users.updateUser(pool, alice.id, { email: 'ALICE@example.com' })
    expect(sameMail?.email_verified_at).not.toBeNull()
    const moved = await users.updateUser(pool, alice.id, { email: 'alice@new.example' })
    expect(moved?.email_verified_at).toBeNull()
    expect(moved?.display_name).toBe('Alice')

    const bob = await users.createUser(pool, { email: 'bob@example.com', displayName: 'Bob' })
    let taken: unknown
    try {
      await users.updateUser(pool, bob.id, { email: 'ALICE@new.example' })
    } catch (err) {
      taken = err
    }
    expect(isHelixError(taken) && taken.code).toBe('USER_EXISTS')

    expect(await users.setPasswordHash(pool, bob.id, '$argon2id$new')).toBe(true)
    expect((await users.findUserById(pool, bob.id))?.password_changed_at).toBeInstanceOf(Date)
    expect((await users.setUserDisabled(pool, bob.id, true))?.disabled_at).toBeInstanceOf(Date)
    expect((await users.setUserDisabled(pool, bob.id, false))?.disabled_at).toBeNull()
    expect((await users.listUsers(pool)).map((u) => u.email)).toEqual([
      'alice@new.example',
      'bob@example.com',
    ])
    expect(await users.countUsers(pool)).toBe(2)
    expect(await users.deleteUser(pool, bob.id)).toBe(true)
    expect(await users.deleteUser(pool, bob.id)).toBe(false)
    expect(await users.findUserById(pool, bob.id)).toBeUndefined()
  })

  it('refresh tokens: rotation claims a token once; reuse revokes the family; sessions per user', async () => {
    const user = await users.createUser(pool, { email: 'carol@example.com' })
    const first = await refreshTokens.insertRefreshToken(pool, {
      userId: user.id,
      tokenHash: hash('t1'),
      expiresAt: inMinutes(60),
      ip: '127.0.0.1',
      userAgent: 'vitest',
    })
    expect(first.ip).toBe('127.0.0.1')
    const [a, b] = await Promise.all([
      refreshTokens.claimRefreshToken(pool, hash('t1')),
      refreshTokens.claimRefreshToken(pool, hash('t1')),
    ])
    expect([a, b].filter(Boolean)).toHaveLength(1)
    const second = await refreshTokens.insertRefreshToken(pool, {
      userId: user.id,
      familyId: first.family_id,
      parentId: first.id,
      tokenHash: hash('t2'),
      expiresAt: inMinutes(60),
    })
    expect(second.family_id).toBe(first.family_id)
    expect((await refreshTokens.findRefreshTokenByHash(pool, hash('t1')))?.used_at).toBeInstanceOf(Date)
    expect(await refreshTokens.listActiveSessions(pool, user.id)).toHaveLength(1)

    // Reuse of t1 → revoke the family: t2, issued by the first refresh, stops working too.
    expect(await refreshTokens.claimRefreshToken(pool, hash('t1'))).toBeUndefined()
    expect(await refreshTokens.revokeFamily(pool, first.family_id)).toBe(2)
    expect(await refreshTokens.claimRefreshToken(pool, hash('t2'))).toBeUndefined()
    expect(await refreshTokens.listActiveSessions(pool, user.id)).toEqual([])

    await refreshTokens.insertRefreshToken(pool, {
      userId: user.id,
      tokenHash: hash('t3'),
      expiresAt: inMinutes(60),
    })
    await refreshTokens.insertRefreshToken(pool, {
      userId: user.id,
      tokenHash: hash('old'),
      expiresAt: inMinutes(-5),
    })
    expect(await refreshTokens.claimRefreshToken(pool, hash('old'))).toBeUndefined()
    expect(await refreshTokens.revokeAllForUser(pool, user.id)).toBe(2)
    expect(await refreshTokens.deleteExpiredRefreshTokens(pool)).toBe(1)
    expect(await refreshTokens.findRefreshTokenByHash(pool, hash('old'))).toBeUndefined()
  })

  it('revoked access tokens: by jti until expiry, idempotent, purgeable', async () => {
    await revokedTokens.revokeAccessToken(pool, { jti: 'jti-1', expiresAt: inMinutes(15), reason: 'logout' })
    await revokedTokens.revokeAccessToken(pool, { jti: 'jti-1', expiresAt: inMinutes(30) })
    await revokedTokens.revokeAccessToken(pool, { jti: 'jti-old', expiresAt: inMinutes(-1) })
    expect(await revokedTokens.isAccessTokenRevoked(pool, 'jti-1')).toBe(true)
    expect(await revokedTokens.isAccessTokenRevoked(pool, 'jti-2')).toBe(false)
    const active = await revokedTokens.listActiveRevocations(pool)
    expect(active.map((r) => [r.jti, r.reason])).toEqual([['jti-1', 'logout']])
    expect(await revokedTokens.listActiveRevocations(pool, inMinutes(1))).toEqual([])
    expect(await revokedTokens.purgeExpiredRevocations(pool)).toBe(1)
  })

  it('api keys: lookup by hash, rotation with grace, revoke, per-user listing, last used', async () => {
    const owner = await users.createUser(pool, { email: 'dave@example.com' })
    const key = await apiKeys.createApiKey(pool, {
      userId: owner.id,
      name: 'ci',
      prefix: 'hx_',
      last4: 'abcd',
      keyHash: hash('k1'),
      scopes: ['infer', 'models:read'],
      models: ['resnet'],
      rateLimitPerMin: 60,
      quotaRequests: 10_000,
      quotaPeriod: 'day',
    })
    expect(key.scopes).toEqual(['infer', 'models:read'])
    expect(key.quota_requests).toBe(10_000)
    expect((await apiKeys.findApiKeyByHash(pool, hash('k1')))?.via).toBe('current')
    expect(await apiKeys.findApiKeyByHash(pool, hash('nope'))).toBeUndefined()

    const rotated = await apiKeys.rotateApiKey(pool, key.id, {
      keyHash: hash('k2'),
      last4: 'wxyz',
      graceUntil: inMinutes(60),
    })
    expect(rotated?.rotated_from_hash).toBe(hash('k1'))
    expect((await apiKeys.findApiKeyByHash(pool, hash('k1')))?.via).toBe('previous')
    expect((await apiKeys.findApiKeyByHash(pool, hash('k2')))?.id).toBe(key.id)
    // Grace over: only the new secret works.
    await apiKeys.rotateApiKey(pool, key.id, {
      keyHash: hash('k3'),
      last4: 'k3k3',
      graceUntil: inMinutes(-1),
    })
    expect(await apiKeys.findApiKeyByHash(pool, hash('k2'))).toBeUndefined()

    await apiKeys.touchApiKey(pool, key.id)
    const touched = await apiKeys.findApiKeyById(pool, key.id)
    expect(touched?.last_used_at).toBeInstanceOf(Date)
    await apiKeys.touchApiKey(pool, key.id)
    expect((await apiKeys.findApiKeyById(pool, key.id))?.last_used_at).toEqual(touched?.last_used_at)

    const service = await apiKeys.createApiKey(pool, {
      name: 'svc',
      prefix: 'hx_',
      last4: '0000',
      keyHash: hash('svc'),
      scopes: ['admin'],
    })
    expect(service.user_id).toBeNull()
    expect((await apiKeys.listApiKeys(pool, { userId: owner.id })).map((k) => k.name)).toEqual(['ci'])
    expect((await apiKeys.revokeApiKey(pool, service.id))?.revoked_at).toBeInstanceOf(Date)
    expect(
      await apiKeys.rotateApiKey(pool, service.id, {
        keyHash: hash('x'),
        last4: 'x',
        graceUntil: inMinutes(1),
      }),
    ).toBeUndefined()
    expect((await apiKeys.listApiKeys(pool)).map((k) => k.name)).toEqual(['ci'])
    expect(await apiKeys.listApiKeys(pool, { includeRevoked: true })).toHaveLength(2)
    expect(await apiKeys.revokeApiKeysOfUser(pool, owner.id)).toBe(1)
    expect(await apiKeys.listApiKeys(pool)).toEqual([])
  })

  it('usage: hourly counters add up atomically and sum for quotas', async () => {
    const key = await apiKeys.createApiKey(pool, {
      name: 'usage',
      prefix: 'hx_',
      last4: '1111',
      keyHash: hash('usage'),
      scopes: ['infer'],
    })
    const hour = new Date('2026-01-01T10:15:00Z')
    await Promise.all(
      Array.from({ length: 20 }, () => usage.recordUsage(pool, key.id, { at: hour, items: 2 })),
    )
    await usage.recordUsage(pool, key.id, { at: new Date('2026-01-01T11:05:00Z'), errors: 1, tokens: 7 })
    await usage.recordUsage(pool, key.id)
    const rows = await usage.usageByHour(pool, key.id, {
      since: new Date('2026-01-01T10:59:00Z'),
      until: new Date('2026-01-02T00:00:00Z'),
    })
    expect(rows).toHaveLength(2)
    expect(rows[0]).toMatchObject({
      hour: new Date('2026-01-01T10:00:00Z'),
      requests: 20,
      items: 40,
      errors: 0,
    })
    expect(rows[1]).toMatchObject({ requests: 1, errors: 1, tokens: 7 })
    expect(await usage.usageTotals(pool, key.id, new Date('2026-01-01T00:00:00Z'))).toEqual({
      requests: 22,
      errors: 1,
      tokens: 7,
      items: 40,
    })
  })

  it('e-mail tokens: single use, purpose-bound, expiring, replaceable', async () => {
    const user = await users.createUser(pool, { email: 'erin@example.com' })
    const code = token()
    await emailTokens.createEmailToken(pool, {
      userId: user.id,
      purpose: 'reset_password',
      tokenHash: hash(code),
      expiresAt: inMinutes(10),
    })
    expect(await emailTokens.consumeEmailToken(pool, hash(code), 'verify_email')).toBeUndefined()
    const [a, b] = await Promise.all([
      emailTokens.consumeEmailToken(pool, hash(code), 'reset_password'),
      emailTokens.consumeEmailToken(pool, hash(code), 'reset_password'),
    ])
    expect([a, b].filter(Boolean)).toHaveLength(1)
    await emailTokens.createEmailToken(pool, {
      userId: user.id,
      purpose: 'verify_email',
      tokenHash: hash('v1'),
      expiresAt: inMinutes(60),
    })
    await emailTokens.createEmailToken(pool, {
      userId: user.id,
      purpose: 'verify_email',
      tokenHash: hash('v0'),
      expiresAt: inMinutes(-60),
    })
    expect(await emailTokens.consumeEmailToken(pool, hash('v0'), 'verify_email')).toBeUndefined()
    expect(await emailTokens.invalidateEmailTokens(pool, user.id, 'verify_email')).toBe(2)
    expect(await emailTokens.consumeEmailToken(pool, hash('v1'), 'verify_email')).toBeUndefined()
    expect(await emailTokens.deleteExpiredEmailTokens(pool)).toBe(1)
  })

  it('audit log: records, filters newest first, anonymises on erasure, expires', async () => {
    const user = await users.createUser(pool, { email: 'frank@example.com' })
    await audit.recordAudit(pool, {
      action: 'auth.login.failure',
      actor: 'frank@example.com',
      ip: '10.0.0.1',
      details: { reason: 'password' },
    })
    await audit.recordAudit(pool, {
      action: 'auth.login.success',
      actorUserId: user.id,
      actor: 'frank@example.com',
      ip: '10.0.0.1',
    })
    const entry = await audit.recordAudit(pool, {
      action: 'apikey.create',
      actorUserId: user.id,
      target: 'key:1',
    })
    expect(entry.details).toEqual({})
    const mine = await audit.listAudit(pool, { actorUserId: user.id })
    expect(mine.map((e) => e.action)).toEqual(['apikey.create', 'auth.login.success'])
    expect((await audit.listAudit(pool, { actionPrefix: 'auth.' })).map((e) => e.ip)).toEqual([
      '10.0.0.1',
      '10.0.0.1',
    ])
    expect(await audit.listAudit(pool, { since: inMinutes(5) })).toEqual([])
    expect(await audit.anonymiseAuditActor(pool, user.id)).toBe(2)
    const after = await audit.listAudit(pool, { actionPrefix: 'auth.login.success' })
    expect(after[0]).toMatchObject({ actor: 'erased-user', actor_user_id: null, ip: null })
    expect(await audit.deleteAuditBefore(pool, inMinutes(1))).toBe(3)
  })

  it('request log: metadata only, export by user (directly or via their keys), erasure, retention', async () => {
    const user = await users.createUser(pool, { email: 'grace@example.com' })
    const key = await apiKeys.createApiKey(pool, {
      userId: user.id,
      name: 'g',
      prefix: 'hx_',
      last4: '2222',
      keyHash: hash('g'),
      scopes: ['infer'],
    })
    await requestLog.logRequest(pool, {
      requestId: 'r1',
      userId: user.id,
      method: 'POST',
      route: '/v2/models/:name/infer',
      model: 'm',
      status: 200,
      durationMs: 3.5,
      items: 4,
      ip: '::1',
    })
    await requestLog.logRequest(pool, {
      requestId: 'r2',
      apiKeyId: key.id,
      method: 'POST',
      route: '/v1/embeddings',
      status: 429,
      durationMs: 0.2,
      at: new Date('2025-01-01T00:00:00Z'),
    })
    await requestLog.logRequest(pool, {
      requestId: 'r3',
      method: 'GET',
      route: '/v2/health/ready',
      status: 200,
      durationMs: 0.1,
    })
    const exported = await requestLog.listRequestsOfUser(pool, user.id)
    expect(exported.map((r) => r.request_id)).toEqual(['r1', 'r2'])
    expect(exported[0]).toMatchObject({ ip: '::1', items: 4, duration_ms: 3.5 })
    expect(
      await requestLog.listRequestsOfUser(pool, user.id, { since: new Date('2026-01-01T00:00:00Z') }),
    ).toHaveLength(1)
    expect(await requestLog.deleteRequestsBefore(pool, new Date('2025-06-01T00:00:00Z'))).toBe(1)
    expect(await requestLog.eraseRequestsOfUser(pool, user.id)).toBe(1)
    expect(await requestLog.listRequestsOfUser(pool, user.id)).toEqual([])
  })

  it('treats a malformed id (from a URL or CLI argument) as "not found" instead of a database error', async () => {
    for (const id of ['42', 'not-a-uuid', "'; DROP TABLE users; --"]) {
      expect(await users.findUserById(pool, id)).toBeUndefined()
      expect(await users.updateUser(pool, id, { displayName: 'x' })).toBeUndefined()
      expect(await users.setPasswordHash(pool, id, 'h')).toBe(false)
      expect(await users.markEmailVerified(pool, id)).toBe(false)
      expect(await users.setUserDisabled(pool, id, true)).toBeUndefined()
      expect(await users.deleteUser(pool, id)).toBe(false)
      expect(await apiKeys.findApiKeyById(pool, id)).toBeUndefined()
      expect(
        await apiKeys.rotateApiKey(pool, id, { keyHash: 'h', last4: 'x', graceUntil: new Date() }),
      ).toBeUndefined()
      expect(await apiKeys.revokeApiKey(pool, id)).toBeUndefined()
    }
    expect(await users.countUsers(pool)).toBeGreaterThan(0)
  })

  it('deleting a user removes their sessions, e-mail tokens and keys with them', async () => {
    const user = await users.createUser(pool, { email: 'heidi@example.com' })
    await refreshTokens.insertRefreshToken(pool, {
      userId: user.id,
      tokenHash: hash('h1'),
      expiresAt: inMinutes(5),
    })
    await emailTokens.createEmailToken(pool, {
      userId: user.id,
      purpose: 'verify_email',
      tokenHash: hash('h2'),
      expiresAt: inMinutes(5),
    })
    const key = await apiKeys.createApiKey(pool, {
      userId: user.id,
      name: 'h',
      prefix: 'hx_',
      last4: '3333',
      keyHash: hash('h3'),
      scopes: [],
    })
    expect(await users.deleteUser(pool, user.id)).toBe(true)
    expect(await refreshTokens.findRefreshTokenByHash(pool, hash('h1'))).toBeUndefined()
    expect(await apiKeys.findApiKeyById(pool, key.id)).toBeUndefined()
    expect(await emailTokens.consumeEmailToken(pool, hash('h2'), 'verify_email')).toBeUndefined()
  })
})
