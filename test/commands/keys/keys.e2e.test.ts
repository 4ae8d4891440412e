import { readdir, readFile, stat } from 'node:fs/promises'
import { createLocalJWKSet, importPKCS8, jwtVerify, SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type {
  BackupResult,
  GenerateResult,
  ListResult,
  RestoreResult,
  RotateResult,
} from '../../../src/provision/jwt/index.js'
import { runHelix, runHelixJson, tempDir } from '../../helpers/cli.js'

let dir: string
let cleanup: () => Promise<void>

beforeAll(async () => {
  const temp = await tempDir('helix-keys-e2e-')
  dir = temp.dir
  cleanup = temp.cleanup
})
afterAll(() => cleanup())

async function files(keysDir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const name of (await readdir(keysDir)).sort()) out[name] = await readFile(`${keysDir}/${name}`, 'utf8')
  return out
}

describe('helix keys (built binary)', () => {
  let first: GenerateResult
  let tokenBefore: string

  it('keys rotate without keys exits 2 with KEYS_MISSING', async () => {
    const result = await runHelix(['keys', 'rotate', '--dir', `${dir}/empty`, '--json'])
    expect(result.exitCode).toBe(2)
    expect(result.stdout).toBe('')
    const { error } = JSON.parse(result.stderr)
    expect(error.code).toBe('KEYS_MISSING')
    expect(error.hint).toContain('helix keys generate')
  })

  it('keys generate --json creates the key files, private key 0600', async () => {
    first = await runHelixJson<GenerateResult>(['keys', 'generate', '--dir', dir])
    expect(first.alg).toBe('EdDSA')
    expect(first.created).toEqual([`keys/${first.kid}.private.pem`, 'keys/jwks.json', 'keys/keys.json'])
    expect((await stat(`${dir}/keys/${first.kid}.private.pem`)).mode & 0o777).toBe(0o600)
    const pem = await readFile(`${dir}/keys/${first.kid}.private.pem`, 'utf8')
    tokenBefore = await new SignJWT({ sub: 'carol' })
      .setProtectedHeader({ alg: 'EdDSA', kid: first.kid })
      .setExpirationTime('10m')
      .sign(await importPKCS8(pem, 'EdDSA'))
  })

  it('keys rotate --json keeps the old kid in keys/jwks.json and old tokens verify', async () => {
    const rotated = await runHelixJson<RotateResult>(['keys', 'rotate', '--dir', dir])
    expect(rotated.current.kid).not.toBe(first.kid)
    expect(rotated.previous.map((k) => k.kid)).toEqual([first.kid])
    const jwks = JSON.parse(await readFile(`${dir}/keys/jwks.json`, 'utf8'))
    expect(jwks.keys.map((k: { kid: string }) => k.kid)).toEqual([rotated.current.kid, first.kid])
    for (const key of jwks.keys)
      expect(Object.keys(key).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x'])
    const { payload } = await jwtVerify(tokenBefore, createLocalJWKSet(jwks), { algorithms: ['EdDSA'] })
    expect(payload.sub).toBe('carol')
  })

  it('keys list --json shows both keys with status, age and retire_at', async () => {
    const listed = await runHelixJson<ListResult>(['keys', 'list', '--dir', dir])
    expect(listed.keys.map((k) => [k.status, k.age_days])).toEqual([
      ['current', 0],
      ['previous', 0],
    ])
    expect(listed.keys[1].kid).toBe(first.kid)
    expect(Date.parse(listed.keys[1].retire_at ?? '')).toBeGreaterThan(Date.now())
    expect(listed.warnings).toEqual([])
  })

  it('keys jwks --json prints the published set', async () => {
    const printed = await runHelixJson<{ keys: unknown[] }>(['keys', 'jwks', '--dir', dir])
    expect(printed).toEqual(JSON.parse(await readFile(`${dir}/keys/jwks.json`, 'utf8')))
  })

  it('backup → restore round trip; a wrong passphrase exits 2 and writes nothing', async () => {
    const env = { HELIX_BACKUP_PASSPHRASE: 'e2e backup passphrase' }
    const out = `${dir}/keys.backup`
    const backup = await runHelixJson<BackupResult>(['keys', 'backup', '--dir', dir, '--out', out], { env })
    expect(backup.kids).toHaveLength(2)
    const before = await files(`${dir}/keys`)

    const wrong = await runHelix(['keys', 'restore', out, '--dir', `${dir}/restored`, '--json'], {
      env: { HELIX_BACKUP_PASSPHRASE: 'not it at all' },
    })
    expect(wrong.exitCode).toBe(2)
    expect(JSON.parse(wrong.stderr).error.code).toBe('BACKUP_DECRYPT_FAILED')
    await expect(stat(`${dir}/restored`)).rejects.toMatchObject({ code: 'ENOENT' })

    const restored = await runHelixJson<RestoreResult>(['keys', 'restore', out, '--dir', `${dir}/restored`], {
      env,
    })
    expect(restored.restored).toHaveLength(4)
    expect(await files(`${dir}/restored/keys`)).toEqual(before)
  })

  it('an unknown --alg is a usage error (exit 2)', async () => {
    const result = await runHelix(['keys', 'generate', '--dir', dir, '--alg', 'HS256'])
    expect(result.exitCode).toBe(2)
  })
})

describe('helix init creates and keeps the JWT keys', () => {
  it('a second init keeps the key files byte-identical', async () => {
    const { dir: home, cleanup: done } = await tempDir('helix-keys-init-')
    try {
      const first = await runHelixJson<{ created: string[] }>([
        'init',
        '--yes',
        '--dir',
        home,
        '--jwt-alg',
        'ES256',
      ])
      expect(first.created).toEqual(expect.arrayContaining(['keys/jwks.json', 'keys/keys.json']))
      const pem = first.created.find((p) => p.endsWith('.private.pem') && p.startsWith('keys/'))
      expect(pem).toBeDefined()
      expect((await stat(`${home}/${pem}`)).mode & 0o777).toBe(0o600)
      const before = await files(`${home}/keys`)
      expect(JSON.parse(before['jwks.json']).keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' })
      const second = await runHelixJson<{ kept: string[]; created: string[] }>([
        'init',
        '--yes',
        '--dir',
        home,
      ])
      expect(second.kept).toEqual(expect.arrayContaining([pem, 'keys/jwks.json', 'keys/keys.json']))
      expect(second.created.filter((p) => p.startsWith('keys/'))).toEqual([])
      expect(await files(`${home}/keys`)).toEqual(before)
    } finally {
      await done()
    }
  })
})
