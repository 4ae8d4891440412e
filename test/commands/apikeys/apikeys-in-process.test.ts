import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import ApikeysCreate from '../../../src/commands/apikeys/create.js'
import ApikeysList from '../../../src/commands/apikeys/list.js'
import ApikeysRevoke from '../../../src/commands/apikeys/revoke.js'
import ApikeysRotate from '../../../src/commands/apikeys/rotate.js'
import Audit from '../../../src/commands/audit/index.js'
import UsersCreate from '../../../src/commands/users/create.js'
import UsersDelete from '../../../src/commands/users/delete.js'
import UsersDisable from '../../../src/commands/users/disable.js'
import UsersList from '../../../src/commands/users/list.js'
import UsersOutbox from '../../../src/commands/users/outbox.js'
import { ROOT } from '../../helpers/cli.js'
import { type CliWorld, cliWorld } from '../users/cli-world.js'

/**
 * The same commands the built-binary tests drive, run in this process so their lines count towards
 * coverage; the output a user sees is captured from stdout.
 */
describe('users / apikeys / audit commands in process', () => {
  let world: CliWorld
  let out: string[]
  beforeAll(async () => {
    world = await cliWorld()
  })
  afterAll(async () => {
    await world?.teardown()
  })

  async function run<T>(
    command: { run(argv: string[], opts: string): Promise<T> },
    argv: string[],
  ): Promise<T> {
    out = []
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      out.push(String(chunk))
      return true
    })
    const log = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      out.push(`${args.join(' ')}\n`)
    })
    try {
      return await command.run([...argv, '--dir', world.database.home.root], ROOT)
    } finally {
      write.mockRestore()
      log.mockRestore()
    }
  }

  it('runs every verb and prints what a user needs', async () => {
    const created = await run(UsersCreate, ['--email', 'ada@example.test', '--name', 'Ada', '--admin'])
    expect(created.user.role).toBe('admin')
    expect(out.join('')).toMatch(/Created admin ada@example.test/)
    expect(((await run(UsersList, [])) as { email: string }[]).map((u) => u.email)).toEqual([
      'ada@example.test',
    ])
    expect((await run(UsersOutbox, ['--to', 'ada@example.test'])).length).toBe(1)
    const key = await run(ApikeysCreate, [
      '--name',
      'ci',
      '--scopes',
      'infer',
      '--user',
      'ada@example.test',
      '--expires',
      '7d',
      '--rate-limit',
      '10',
      '--quota-requests',
      '100',
      '--quota-items',
      '1000',
      '--quota-period',
      'month',
    ])
    expect(out.join('')).toContain(key.key)
    expect(key.quota_period).toBe('month')
    expect(
      ((await run(ApikeysList, ['--user', 'ada@example.test', '--all'])) as { id: string }[]).map(
        (k) => k.id,
      ),
    ).toEqual([key.id])
    expect(out.join('')).not.toContain(key.key)
    const rotated = await run(ApikeysRotate, [key.id, '--grace', '0s'])
    expect(rotated.key).not.toBe(key.key)
    expect((await run(ApikeysRotate, [key.id])).id).toBe(key.id)
    expect((await run(ApikeysRevoke, [key.id])).revoked_at).not.toBeNull()
    expect(out.join('')).toMatch(/Revoked ci/)
    expect((await run(UsersDisable, ['ada@example.test'])).disabled).toBe(true)
    expect(out.join('')).toMatch(/disabled/)
    expect((await run(UsersDisable, ['ada@example.test', '--enable'])).disabled).toBe(false)
    await expect(run(UsersDelete, ['ada@example.test'])).rejects.toThrow()
    expect((await run(UsersDelete, ['ada@example.test', '--yes'])).erased).toBe(true)
    expect(out.join('')).toMatch(/Erased ada@example.test/)
    const audit = (await run(Audit, ['--since', '1h', '--action', 'apikey.'])) as { action: string }[]
    expect(audit.map((a) => a.action).sort()).toEqual([
      'apikey.create',
      'apikey.revoke',
      'apikey.rotate',
      'apikey.rotate',
    ])
  })
})
