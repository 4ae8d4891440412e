import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  cliAudit,
  cliCreateKey,
  cliCreateUser,
  cliDeleteUser,
  cliListKeys,
  cliListUsers,
  cliOutbox,
  cliRevokeKey,
  cliRotateKey,
  cliSetUserDisabled,
} from '../../src/cli/admin.js'
import {
  keyState,
  renderAudit,
  renderCreatedKey,
  renderKeys,
  renderOutbox,
  renderUsers,
} from '../../src/cli/output/identity.js'
import { openIdentity } from '../../src/core/identity/identity.js'
import { type IdentityWorld, identityWorld } from '../core/identity/identity-harness.js'

describe('services behind helix users / apikeys / audit (in process, real PostgreSQL)', () => {
  let world: IdentityWorld
  beforeAll(async () => {
    world = await identityWorld()
  })
  afterAll(async () => {
    await world?.teardown()
  })

  it('runs the whole user and key lifecycle and renders it for humans', async () => {
    const { home, config } = world.database
    expect(renderUsers(await cliListUsers(home, config))).toMatch(/No users yet/)
    const { user, advice } = await cliCreateUser(home, config, {
      email: 'ada@example.test',
      password: 'zebrapiano',
      displayName: 'Ada',
      admin: true,
    })
    expect(user.role).toBe('admin')
    expect(advice).toMatch(/15/)
    expect(renderUsers(await cliListUsers(home, config))).toContain('ada@example.test')
    const outbox = await cliOutbox(home, config, { to: 'ada@example.test' })
    expect(outbox).toHaveLength(1)
    expect(renderOutbox(outbox)).toContain('Subject: Confirm your e-mail')
    expect(renderOutbox([])).toMatch(/empty/)

    expect(renderKeys(await cliListKeys(home, config))).toMatch(/No API keys/)
    const key = await cliCreateKey(home, config, {
      name: 'ocr',
      scopes: ['infer:add'],
      user: 'ada@example.test',
      expires: '30d',
      rateLimitPerMin: 60,
      quotaRequests: 1000,
      quotaItems: 5000,
      quotaPeriod: 'day',
    })
    expect(key).toMatchObject({
      user_id: user.id,
      rate_limit_per_min: 60,
      quota_requests: 1000,
      quota_items: 5000,
      quota_period: 'day',
    })
    expect(renderCreatedKey(key, 'Created')).toContain(key.key)
    const mine = await cliListKeys(home, config, { user: 'ada@example.test' })
    expect(mine.map((k) => k.id)).toEqual([key.id])
    expect(renderKeys(mine)).toContain(`${key.prefix}…${key.last4}`)
    expect(renderKeys(mine)).not.toContain(key.key)
    const rotated = await cliRotateKey(home, config, key.id, { grace: '1h' })
    expect(keyState(rotated)).toBe('rotating')
    expect(renderCreatedKey(rotated, 'Rotated')).toMatch(/previous secret keeps working until/)
    const rotatedDefault = await cliRotateKey(home, config, key.id)
    expect(Date.parse(rotatedDefault.grace_until as string) - Date.now()).toBeGreaterThan(23 * 3600_000)
    const revoked = await cliRevokeKey(home, config, key.id)
    expect(keyState(revoked)).toBe('revoked')
    expect(await cliListKeys(home, config)).toHaveLength(0)
    expect(await cliListKeys(home, config, { includeRevoked: true })).toHaveLength(1)
    expect(
      keyState({ ...revoked, revoked_at: null, grace_until: null, expires_at: new Date(0).toISOString() }),
    ).toBe('expired')
    expect(keyState({ ...revoked, revoked_at: null, grace_until: null, expires_at: null })).toBe('active')
    await expect(cliRevokeKey(home, config, 'nope')).rejects.toMatchObject({ code: 'NOT_FOUND' })
    await expect(
      cliCreateKey(home, config, { name: 'x', scopes: ['infer'], user: 'ghost@example.test' }),
    ).rejects.toMatchObject({
      code: 'NOT_FOUND',
    })

    expect((await cliSetUserDisabled(home, config, user.id, true)).disabled).toBe(true)
    const erased = await cliDeleteUser(home, config, 'ada@example.test')
    expect(erased).toMatchObject({ erased: true, api_keys_detached: 1, mails_deleted: 1 })

    const audit = await cliAudit(home, config, { since: '1h' })
    expect(audit.map((a) => a.action)).toEqual(
      expect.arrayContaining([
        'user.create',
        'apikey.create',
        'apikey.rotate',
        'apikey.revoke',
        'user.disable',
        'user.delete',
      ]),
    )
    expect(renderAudit(audit)).toMatch(/apikey\.revoke\s+cli/)
    expect(renderAudit([])).toMatch(/No audit entries/)
    expect(await cliAudit(home, config, { action: 'apikey.', limit: 2 })).toHaveLength(2)
    await expect(cliAudit(home, config, { limit: 0 })).rejects.toMatchObject({ code: 'INVALID_INPUT' })
  })

  it('openIdentity connects to the configured database for `helix serve`, and fails cleanly without keys', async () => {
    const { home, config } = world.database
    const identity = await openIdentity(home, config)
    expect(identity.deps.keys?.signer.kid).toBeTruthy()
    expect(identity.deps.keys?.jwks.keys.length).toBeGreaterThan(0)
    await identity.close()
    const { rm } = await import('node:fs/promises')
    await rm(home.keysDir, { recursive: true })
    await expect(openIdentity(home, config)).rejects.toMatchObject({ code: 'KEYS_MISSING' })
  })
})
