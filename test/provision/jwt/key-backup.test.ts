import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createLocalJWKSet, jwtVerify, SignJWT } from 'jose'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { encryptBackup } from '../../../src/provision/jwt/backup-archive.js'
import { generateKeys, rotateKeys } from '../../../src/provision/jwt/jwt-keys.js'
import { backupKeys, restoreKeys } from '../../../src/provision/jwt/key-backup.js'
import { parseConfig } from '../../../src/shared/config.js'
import { HelixError } from '../../../src/shared/errors.js'
import { HelixHome } from '../../../src/shared/home.js'
import { loadJwks, loadSigningKey } from '../../../src/state/jwt/signing-key.js'
import { tempDir } from '../../helpers/cli.js'

const FAST = { N: 2 ** 10, r: 8, p: 1 }
const PASS = 'a long backup passphrase'

let root: string
let home: HelixHome
let cleanup: () => Promise<void>

beforeEach(async () => {
  const temp = await tempDir('helix-jwt-backup-')
  root = temp.dir
  home = new HelixHome(`${root}/helix`)
  cleanup = temp.cleanup
})
afterEach(() => cleanup())

async function snapshot(): Promise<Record<string, { data: string; mode: number }>> {
  const out: Record<string, { data: string; mode: number }> = {}
  for (const name of (await readdir(home.path('keys')).catch(() => [])).sort()) {
    const path = home.path('keys', name)
    out[name] = { data: await readFile(path, 'utf8'), mode: (await stat(path)).mode & 0o777 }
  }
  return out
}

async function codeOf(promise: Promise<unknown>): Promise<HelixError> {
  const err = await promise.catch((e: unknown) => e)
  expect(err).toBeInstanceOf(HelixError)
  return err as HelixError
}

async function twoKeys() {
  await generateKeys(home, parseConfig({}))
  await rotateKeys(home, parseConfig({ jwt: { algorithm: 'ES256' } }))
}

/** An archive with the given file map, encrypted like a real backup (to test content validation). */
async function craftedBackup(
  files: Record<string, string>,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const plain = {
    version: 1,
    created_at: new Date().toISOString(),
    files: Object.fromEntries(Object.entries(files).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    ...extra,
  }
  const out = `${root}/crafted.bak`
  await writeFile(out, await encryptBackup(Buffer.from(JSON.stringify(plain)), PASS, FAST))
  return out
}

describe('backup and restore', () => {
  it('backup → delete → restore gives identical files and modes, and old tokens still verify', async () => {
    await twoKeys()
    const { kid, alg, privateKey } = await loadSigningKey(home)
    const token = await new SignJWT({ sub: 'bob' })
      .setProtectedHeader({ alg, kid })
      .setExpirationTime('1h')
      .sign(privateKey)
    const before = await snapshot()
    expect(Object.keys(before)).toHaveLength(4)

    const out = `${root}/keys.backup`
    const backup = await backupKeys(home, { out, passphrase: PASS })
    expect(backup.file).toBe(out)
    expect(backup.kids).toHaveLength(2)
    expect(backup.files).toContain('keys/keys.json')
    expect(backup.kdf).toEqual({ name: 'scrypt', N: 2 ** 17, r: 8, p: 1 })
    expect((await stat(out)).mode & 0o777).toBe(0o600)
    const raw = await readFile(out)
    for (const { data } of Object.values(before)) expect(raw.includes(Buffer.from(data))).toBe(false)

    await rm(home.path('keys'), { recursive: true })
    const restored = await restoreKeys(home, { file: out, passphrase: PASS })
    expect(restored.current).toBe(kid)
    expect(restored.restored.sort()).toEqual(Object.keys(before).map((n) => `keys/${n}`))
    expect(restored.removed).toEqual([])
    expect(await snapshot()).toEqual(before)
    await expect(jwtVerify(token, createLocalJWKSet(await loadJwks(home)))).resolves.toBeDefined()
  })

  it('a wrong passphrase or a flipped byte fails cleanly and writes nothing', async () => {
    await twoKeys()
    const out = `${root}/keys.backup`
    await backupKeys(home, { out, passphrase: PASS, scrypt: FAST })
    const before = await snapshot()

    const wrong = await codeOf(
      restoreKeys(home, { file: out, passphrase: 'not the passphrase', force: true }),
    )
    expect(wrong.code).toBe('BACKUP_DECRYPT_FAILED')
    expect(wrong.message).toContain('Nothing was written')
    expect(await snapshot()).toEqual(before)

    const data = await readFile(out)
    data[data.length - 40] ^= 0x80
    await writeFile(out, data)
    expect((await codeOf(restoreKeys(home, { file: out, passphrase: PASS, force: true }))).code).toBe(
      'BACKUP_DECRYPT_FAILED',
    )
    expect(await snapshot()).toEqual(before)

    await rm(home.path('keys'), { recursive: true })
    expect((await codeOf(restoreKeys(home, { file: out, passphrase: PASS }))).code).toBe(
      'BACKUP_DECRYPT_FAILED',
    )
    await expect(readdir(home.path('keys'))).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('refuses to overwrite existing keys without force; with force keys/ ends up exactly as backed up', async () => {
    await generateKeys(home, parseConfig({}))
    const out = `${root}/keys.backup`
    await backupKeys(home, { out, passphrase: PASS, scrypt: FAST })
    const backedUp = await snapshot()
    const newer = await rotateKeys(home, parseConfig({}))
    const current = await snapshot()

    const exists = await codeOf(restoreKeys(home, { file: out, passphrase: PASS }))
    expect(exists.code).toBe('KEYS_EXIST')
    expect(exists.hint).toContain('--force')
    expect(await snapshot()).toEqual(current)

    const forced = await restoreKeys(home, { file: out, passphrase: PASS, force: true })
    expect(forced.removed).toEqual([`keys/${newer.current.kid}.private.pem`])
    expect(await snapshot()).toEqual(backedUp)
  })

  it('refuses to replace an existing backup file without force', async () => {
    await generateKeys(home, parseConfig({}))
    const out = `${root}/keys.backup`
    await writeFile(out, 'precious')
    expect((await codeOf(backupKeys(home, { out, passphrase: PASS, scrypt: FAST }))).code).toBe(
      'BACKUP_EXISTS',
    )
    expect(await readFile(out, 'utf8')).toBe('precious')
    await backupKeys(home, { out, passphrase: PASS, scrypt: FAST, force: true })
    expect((await readFile(out)).subarray(0, 5).toString()).toBe('HELIX')
  })

  it('needs keys, a long enough passphrase, and an existing backup file', async () => {
    expect((await codeOf(backupKeys(home, { out: `${root}/b`, passphrase: PASS }))).code).toBe('KEYS_MISSING')
    await generateKeys(home, parseConfig({}))
    expect((await codeOf(backupKeys(home, { out: `${root}/b`, passphrase: 'short' }))).code).toBe(
      'PASSPHRASE_TOO_SHORT',
    )
    const missing = await codeOf(restoreKeys(home, { file: `${root}/nope`, passphrase: PASS }))
    expect(missing.code).toBe('BACKUP_NOT_FOUND')
    expect(missing.exitCode).toBe(2)
  })

  it('a key set with a missing private key cannot be backed up', async () => {
    const { kid } = await generateKeys(home, parseConfig({}))
    await rm(home.path('keys', `${kid}.private.pem`))
    expect((await codeOf(backupKeys(home, { out: `${root}/b`, passphrase: PASS, scrypt: FAST }))).code).toBe(
      'KEYS_CORRUPT',
    )
  })
})

describe('restore checks the decrypted content before writing', () => {
  let valid: Record<string, string>
  let kid: string

  beforeEach(async () => {
    kid = (await generateKeys(home, parseConfig({}))).kid
    valid = Object.fromEntries(
      await Promise.all(
        ['keys.json', 'jwks.json', `${kid}.private.pem`].map(
          async (n) => [n, await readFile(home.path('keys', n), 'utf8')] as const,
        ),
      ),
    )
    await rm(home.path('keys'), { recursive: true })
  })

  it('accepts a well-formed archive', async () => {
    const restored = await restoreKeys(home, { file: await craftedBackup(valid), passphrase: PASS })
    expect(restored.current).toBe(kid)
  })

  it.each([
    ['a path outside keys/', (f: Record<string, string>) => ({ ...f, '../evil.sh': 'x' }), /unexpected file/],
    ['no keys.json', (f: Record<string, string>) => ({ 'jwks.json': f['jwks.json'] }), /missing/],
    ['a bad keys.json', (f: Record<string, string>) => ({ ...f, 'keys.json': '[]' }), /schema/],
    [
      'no current key',
      (f: Record<string, string>) => ({ ...f, 'keys.json': f['keys.json'].replace('current', 'retired') }),
      /no current key/,
    ],
    [
      'a missing private key',
      (f: Record<string, string>) => ({ 'keys.json': f['keys.json'], 'jwks.json': f['jwks.json'] }),
      /missing/,
    ],
    [
      'an unparsable private key',
      (f: Record<string, string>) => ({ ...f, [`${kid}.private.pem`]: 'junk' }),
      /cannot be parsed/,
    ],
  ])('refuses %s and writes nothing', async (_name, edit, message) => {
    const err = await codeOf(restoreKeys(home, { file: await craftedBackup(edit(valid)), passphrase: PASS }))
    expect(err.code).toBe('BACKUP_INVALID')
    expect(err.message).toMatch(message)
    await expect(readdir(home.path('keys'))).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('refuses a private key that is not the key its kid names', async () => {
    const other = await generateKeys(new HelixHome(`${root}/other`), parseConfig({}))
    const pem = await readFile(`${root}/other/keys/${other.kid}.private.pem`, 'utf8')
    const err = await codeOf(
      restoreKeys(home, {
        file: await craftedBackup({ ...valid, [`${kid}.private.pem`]: pem }),
        passphrase: PASS,
      }),
    )
    expect(err.message).toMatch(/another key/)
  })

  it('refuses plaintext that is not an archive', async () => {
    const out = `${root}/raw.bak`
    await writeFile(out, await encryptBackup(Buffer.from('not json'), PASS, FAST))
    expect((await codeOf(restoreKeys(home, { file: out, passphrase: PASS }))).message).toMatch(/not JSON/)
    await writeFile(out, await encryptBackup(Buffer.from('{"version":7}'), PASS, FAST))
    expect((await codeOf(restoreKeys(home, { file: out, passphrase: PASS }))).message).toMatch(
      /unknown layout/,
    )
  })
})
