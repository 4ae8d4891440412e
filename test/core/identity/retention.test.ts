import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OutboxMailer } from '../../../src/core/identity/mail/outbox-mailer.js'
import { purgeExpired } from '../../../src/core/identity/retention.js'
import { parseConfig } from '../../../src/shared/config.js'
import * as repos from '../../../src/state/db/repositories/index.js'
import { type IdentityWorld, identityWorld } from './identity-harness.js'

describe('retention purge (real PostgreSQL)', () => {
  let world: IdentityWorld
  beforeAll(async () => {
    world = await identityWorld()
  })
  afterAll(async () => {
    await world?.teardown()
  })

  it('drops what is past its retention period and keeps the rest', async () => {
    const db = world.db
    const config = parseConfig({ auth: { audit_retention_days: 30, request_log_retention_days: 7 } })
    const day = 86_400_000
    const now = Date.now()
    const user = await repos.users.createUser(db, { email: 'old@example.test' })
    await db.query("INSERT INTO audit_log (at, action) VALUES ($1, 'old'), ($2, 'recent')", [
      new Date(now - 40 * day),
      new Date(now - 5 * day),
    ])
    for (const at of [new Date(now - 10 * day), new Date(now - day)]) {
      await repos.requestLog.logRequest(db, {
        requestId: 'r',
        method: 'GET',
        route: '/v2',
        status: 200,
        durationMs: 1,
        at,
      })
    }
    await repos.revokedTokens.revokeAccessToken(db, { jti: 'gone', expiresAt: new Date(now - 1000) })
    await repos.revokedTokens.revokeAccessToken(db, { jti: 'live', expiresAt: new Date(now + 60_000) })
    await repos.emailTokens.createEmailToken(db, {
      userId: user.id,
      purpose: 'verify_email',
      tokenHash: 'a'.repeat(64),
      expiresAt: new Date(now - 1000),
    })
    await new OutboxMailer(db).send({ to: 'old@example.test', subject: 's', text: 't' })
    await db.query('UPDATE mail_outbox SET created_at = $1', [new Date(now - 2 * day)])
    await new OutboxMailer(db).send({ to: 'old@example.test', subject: 'fresh', text: 't' })

    const report = await purgeExpired({ db, config })
    expect(report).toEqual({
      audit_entries: 1,
      request_log_rows: 1,
      revocations: 1,
      email_tokens: 1,
      outbox_mails: 1,
    })
    expect((await db.query('SELECT action FROM audit_log')).rows.map((r) => r.action)).toEqual(['recent'])
    expect((await db.query('SELECT jti FROM revoked_tokens')).rows).toEqual([{ jti: 'live' }])
    expect((await db.query('SELECT subject FROM mail_outbox')).rows).toEqual([{ subject: 'fresh' }])
    expect(await purgeExpired({ db, config })).toEqual({
      audit_entries: 0,
      request_log_rows: 0,
      revocations: 0,
      email_tokens: 0,
      outbox_mails: 0,
    })
  })
})
