import { readFile, stat } from 'node:fs/promises'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import KeysBackup from '../../../src/commands/keys/backup.js'
import KeysGenerate from '../../../src/commands/keys/generate.js'
import KeysJwks from '../../../src/commands/keys/jwks.js'
import KeysList from '../../../src/commands/keys/list.js'
import KeysPrune from '../../../src/commands/keys/prune.js'
import KeysRestore from '../../../src/commands/keys/restore.js'
import KeysRotate from '../../../src/commands/keys/rotate.js'
import type { GenerateResult, ListResult, RotateResult } from '../../../src/provision/jwt/jwt-keys.js'
import { tempDir } from '../../helpers/cli.js'
import { runInProcess } from './in-process.js'

let dir: string
let cleanup: () => Promise<void>
const PASS = { HELIX_BACKUP_PASSPHRASE: 'commands test passphrase' }

beforeEach(async () => {
  const temp = await tempDir('helix-keys-cmd-')
  dir = temp.dir
  cleanup = temp.cleanup
})
afterEach(() => cleanup())

describe('helix keys commands (in process)', () => {
  it('generate prints what it created, then what it kept', async () => {
    const first = await runInProcess<GenerateResult>(KeysGenerate, ['--dir', dir, '--alg', 'ES256'])
    expect(first.exitCode).toBe(0)
    expect(first.stdout).toContain(`JWT signing key ${first.result?.kid} (ES256) is current.`)
    expect(first.stdout).toContain('created  keys/jwks.json')
    const again = await runInProcess<GenerateResult>(KeysGenerate, ['--dir', dir])
    expect(again.stdout).toContain('kept     keys/jwks.json')
    expect(again.stdout).toContain('use --force to regenerate')
    const forced = await runInProcess<GenerateResult>(KeysGenerate, ['--dir', dir, '--force'])
    expect(forced.stdout).toContain(`deleted  keys/${first.result?.kid}.private.pem`)
  })

  it('rotate, list, prune and jwks print for humans and return typed results', async () => {
    await runInProcess(KeysGenerate, ['--dir', dir])
    const rotated = await runInProcess<RotateResult>(KeysRotate, ['--dir', dir, '--alg', 'RS256'])
    expect(rotated.exitCode).toBe(0)
    const { current, previous } = rotated.result!
    expect(current.alg).toBe('RS256')
    expect(rotated.stdout).toContain(`New current key ${current.kid} (RS256)`)
    expect(rotated.stdout).toContain(
      `Previous key ${previous[0].kid} stays in keys/jwks.json until ${previous[0].retire_at}`,
    )

    const listed = await runInProcess<ListResult>(KeysList, ['--dir', dir])
    expect(listed.stdout).toMatch(/^KID\s+ALG\s+STATUS\s+CREATED\s+AGE \(DAYS\)\s+RETIRE AT/)
    expect(listed.stdout).toMatch(new RegExp(`${current.kid}\\s+RS256\\s+current`))
    expect(listed.stdout).toMatch(new RegExp(`${previous[0].kid}\\s+EdDSA\\s+previous`))

    const pruned = await runInProcess(KeysPrune, ['--dir', dir])
    expect(pruned.stdout).toContain('No key is due for retirement.')

    const jwks = await runInProcess(KeysJwks, ['--dir', dir])
    const printed = JSON.parse(jwks.stdout) as { keys: { kid: string }[] }
    expect(printed.keys.map((k) => k.kid)).toEqual([current.kid, previous[0].kid])
  })

  it('rotate and list print warnings on stderr, not stdout', async () => {
    await runInProcess(KeysGenerate, ['--dir', dir])
    const { writeFile } = await import('node:fs/promises')
    await writeFile(`${dir}/helix.yaml`, 'jwt:\n  overlap_days: 0\n  rotate_after_days: 1\n')
    const rotated = await runInProcess<RotateResult>(KeysRotate, ['--dir', dir])
    expect(rotated.stderr).toContain('Warning: jwt.overlap_days (0)')
    expect(rotated.stdout).toMatch(/Retired .*: its overlap has passed/)
    expect(rotated.stdout).toMatch(/deleted {2}keys\/.*\.private\.pem/)
    const listed = await runInProcess<ListResult>(KeysList, ['--dir', dir])
    expect(listed.result?.warnings).toEqual([])
  })

  it('prune reports keys it retired', async () => {
    await runInProcess(KeysGenerate, ['--dir', dir])
    const { writeFile } = await import('node:fs/promises')
    await runInProcess(KeysRotate, ['--dir', dir])
    // Move the previous key's retire_at into the past, as time passing would.
    const set = JSON.parse(await readFile(`${dir}/keys/keys.json`, 'utf8'))
    for (const record of Object.values(set.keys) as { status: string; retire_at: string | null }[]) {
      if (record.status === 'previous') record.retire_at = '2000-01-01T00:00:00.000Z'
    }
    await writeFile(`${dir}/keys/keys.json`, JSON.stringify(set))
    const pruned = await runInProcess(KeysPrune, ['--dir', dir])
    expect(pruned.stdout).toMatch(/Retired \S+: its overlap has passed; it is no longer in the JWKS\./)
  })

  it('backup and restore through the commands, passphrase from the environment', async () => {
    await runInProcess(KeysGenerate, ['--dir', dir])
    const before = await readFile(`${dir}/keys/keys.json`, 'utf8')
    const out = `${dir}/keys.backup`
    const backup = await runInProcess(KeysBackup, ['--dir', dir, '--out', out], PASS)
    expect(backup.exitCode).toBe(0)
    expect(backup.stdout).toContain(`written to ${out}`)
    expect((await stat(out)).mode & 0o777).toBe(0o600)

    const refused = await runInProcess(KeysRestore, ['--dir', dir, out], PASS)
    expect(refused.exitCode).toBe(2)
    expect(refused.stderr).toContain('Error: JWT keys already exist')
    expect(refused.stderr).toContain('Hint: Add --force')

    const rotated = await runInProcess<RotateResult>(KeysRotate, ['--dir', dir])
    const restored = await runInProcess(KeysRestore, ['--dir', dir, out, '--force'], PASS)
    expect(restored.exitCode).toBe(0)
    expect(restored.stdout).toContain('restored keys/keys.json')
    expect(restored.stdout).toContain(`deleted  keys/${rotated.result?.current.kid}.private.pem`)
    expect(await readFile(`${dir}/keys/keys.json`, 'utf8')).toBe(before)
  })

  it('without a passphrase or a terminal, backup is a usage error in JSON on stderr', async () => {
    await runInProcess(KeysGenerate, ['--dir', dir])
    const result = await runInProcess(KeysBackup, ['--dir', dir, '--out', `${dir}/b`, '--json'], {
      HELIX_BACKUP_PASSPHRASE: undefined,
    })
    expect(result.exitCode).toBe(2)
    expect(result.stdout).toBe('')
    expect(JSON.parse(result.stderr).error.code).toBe('PASSPHRASE_REQUIRED')
  })
})
