import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runHelix, runHelixJson } from '../../helpers/cli.js'
import { type CliWorld, cliWorld } from './cli-world.js'

const PASSWORD = 'correct horse battery staple'

describe('helix users (built CLI, real PostgreSQL)', () => {
  let world: CliWorld
  beforeAll(async () => {
    world = await cliWorld()
  })
  afterAll(async () => {
    await world?.teardown()
  })

  it('create reads the password from stdin, stores only an argon2id hash and mails a verification link to the outbox', async () => {
    const created = await runHelixJson<{ user: { id: string; email: string; role: string } }>(
      ['users', 'create', '--email', 'ada@example.test', '--admin', '--password-stdin'],
      { env: world.env, input: `${PASSWORD}\n`, stdin: undefined },
    )
    expect(created.user).toMatchObject({ email: 'ada@example.test', role: 'admin' })
    const { rows } = await world.db.query('SELECT password_hash FROM users WHERE id = $1', [created.user.id])
    expect(rows[0].password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
    const outbox = await runHelixJson<Array<{ recipient: string; subject: string; body: string }>>(
      ['users', 'outbox', '--to', 'ada@example.test'],
      { env: world.env },
    )
    expect(outbox).toHaveLength(1)
    expect(outbox[0].subject).toMatch(/Confirm your e-mail/)
    const human = await runHelix(['users', 'outbox'], { env: world.env })
    expect(human.stdout).toContain('to ada@example.test')
  })

  it('refuses weak passwords, bad e-mails and duplicates with exit 2 and a stable code', async () => {
    const weak = await runHelix(
      ['users', 'create', '--email', 'b@example.test', '--password-stdin', '--json'],
      {
        env: world.env,
        input: 'iloveyou',
        stdin: undefined,
      },
    )
    expect(weak.exitCode).toBe(2)
    expect(JSON.parse(weak.stderr).error.code).toBe('PASSWORD_COMMON')
    expect(weak.stderr).not.toContain('iloveyou')
    const bad = await runHelix(['users', 'create', '--email', 'nope', '--json'], { env: world.env })
    expect(JSON.parse(bad.stderr).error.code).toBe('EMAIL_INVALID')
    const dup = await runHelix(['users', 'create', '--email', 'ADA@example.test', '--json'], {
      env: world.env,
    })
    expect(dup.exitCode).toBe(2)
    expect(JSON.parse(dup.stderr).error.code).toBe('USER_EXISTS')
    const empty = await runHelix(['users', 'create', '--email', 'c@example.test', '--password-stdin'], {
      env: world.env,
      input: '',
      stdin: undefined,
    })
    expect(empty.exitCode).toBe(2)
  })

  it('list, disable, enable and delete (GDPR erasure, needs --yes)', async () => {
    await runHelixJson(['users', 'create', '--email', 'bob@example.test', '--name', 'Bob'], {
      env: world.env,
    })
    const list = await runHelixJson<Array<{ email: string; disabled: boolean }>>(['users', 'list'], {
      env: world.env,
    })
    expect(list.map((u) => u.email)).toEqual(['ada@example.test', 'bob@example.test'])
    const human = await runHelix(['users', 'list'], { env: world.env })
    expect(human.stdout).toMatch(/E-MAIL\s+ROLE/)
    expect(human.stdout).toContain('bob@example.test')
    const disabled = await runHelixJson<{ disabled: boolean }>(['users', 'disable', 'bob@example.test'], {
      env: world.env,
    })
    expect(disabled.disabled).toBe(true)
    const enabled = await runHelixJson<{ disabled: boolean }>(
      ['users', 'disable', 'bob@example.test', '--enable'],
      { env: world.env },
    )
    expect(enabled.disabled).toBe(false)
    const unconfirmed = await runHelix(['users', 'delete', 'bob@example.test'], { env: world.env })
    expect(unconfirmed.exitCode).toBe(2)
    expect(unconfirmed.stderr).toMatch(/--yes/)
    const erased = await runHelixJson<{ erased: boolean }>(['users', 'delete', 'bob@example.test', '--yes'], {
      env: world.env,
    })
    expect(erased.erased).toBe(true)
    const missing = await runHelix(['users', 'delete', 'bob@example.test', '--yes', '--json'], {
      env: world.env,
    })
    expect(missing.exitCode).toBe(2)
    expect(JSON.parse(missing.stderr).error.code).toBe('NOT_FOUND')
    const audit = await runHelixJson<Array<{ action: string; actor: string }>>(
      ['audit', '--since', '1h', '--action', 'user.'],
      { env: world.env },
    )
    expect(audit.map((a) => a.action)).toEqual(
      expect.arrayContaining(['user.create', 'user.disable', 'user.enable', 'user.delete']),
    )
    expect(audit.every((a) => a.actor === 'cli' || a.actor === 'erased-user')).toBe(true)

    // The erasure kept the audit chain verifiable; a head kept elsewhere proves nothing was rewritten.
    const verified = await runHelix(['audit', 'verify'], { env: world.env })
    expect(verified.exitCode, verified.stderr).toBe(0)
    const head = /head (\d+:[0-9a-f]{64})/.exec(verified.stdout)?.[1]
    expect(verified.stdout, verified.stdout).toMatch(
      /^audit log intact: \d+ entries from position 1 to \d+; head /,
    )
    const report = await runHelixJson<{ ok: boolean; entries: number; head: { seq: string } }>(
      ['audit', 'verify', '--expect-head', head ?? ''],
      { env: world.env },
    )
    expect(report.ok).toBe(true)
    expect(`${report.head.seq}`).toBe(head?.split(':')[0])
    const wrong = await runHelix(
      ['audit', 'verify', '--json', '--expect-head', `${head?.split(':')[0]}:${'0'.repeat(64)}`],
      {
        env: world.env,
      },
    )
    expect(wrong.exitCode).toBe(1)
    const error = JSON.parse(wrong.stderr).error
    expect(error.code).toBe('AUDIT_CHAIN_BROKEN')
    expect(error.message).toMatch(/the head recorded earlier, has another hash now: the chain was rewritten/)
    const typo = await runHelix(['audit', 'verify', '--expect-head', 'latest'], { env: world.env })
    expect(typo.exitCode).toBe(2)
    expect(typo.stderr).toMatch(/--expect-head must be SEQ:HASH/)
  })
})
