import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createLocalJWKSet, errors, importPKCS8, jwtVerify, SignJWT } from 'jose'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  ensureJwtKeys,
  generateKeys,
  listKeys,
  pruneKeys,
  rotateKeys,
} from '../../../src/provision/jwt/jwt-keys.js'
import { type HelixConfig, parseConfig } from '../../../src/shared/config.js'
import type { JwtAlgorithm } from '../../../src/shared/config-schema.js'
import { HelixError } from '../../../src/shared/errors.js'
import { HelixHome } from '../../../src/shared/home.js'
import { JWT_ALGORITHMS } from '../../../src/state/jwt/key-algorithms.js'
import { loadJwks, loadSigningKey } from '../../../src/state/jwt/signing-key.js'
import { tempDir } from '../../helpers/cli.js'

const t0 = new Date('2026-03-01T12:00:00.000Z')
const days = (n: number) => new Date(t0.getTime() + n * 86_400_000)

let home: HelixHome
let cleanup: () => Promise<void>

beforeEach(async () => {
  const temp = await tempDir('helix-jwt-')
  home = new HelixHome(temp.dir)
  cleanup = temp.cleanup
})
afterEach(() => cleanup())

function config(jwt: Record<string, unknown> = {}): HelixConfig {
  return parseConfig({ jwt })
}

async function snapshot(): Promise<Record<string, string>> {
  const out: Record<string, string> = {}
  for (const name of (await readdir(home.path('keys')).catch(() => [])).sort()) {
    out[name] = await readFile(home.path('keys', name), 'utf8')
  }
  return out
}

async function readJson<T>(name: string): Promise<T> {
  return JSON.parse(await readFile(home.path('keys', name), 'utf8')) as T
}

async function signWithCurrent(exp = '2h'): Promise<string> {
  const { kid, alg, privateKey } = await loadSigningKey(home)
  return new SignJWT({ sub: 'alice' })
    .setProtectedHeader({ alg, kid })
    .setIssuedAt()
    .setExpirationTime(exp)
    .sign(privateKey)
}

async function verifyWithJwksFile(token: string, algorithms: JwtAlgorithm[] = [...JWT_ALGORITHMS]) {
  return jwtVerify(token, createLocalJWKSet(await readJson('jwks.json')), { algorithms })
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<HelixError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(HelixError)
  expect((err as HelixError).code).toBe(code)
  return err as HelixError
}

describe('generate / ensureJwtKeys', () => {
  it('creates a 0600 private key, a public-only jwks.json and keys.json, with paths relative to the home', async () => {
    const report = await ensureJwtKeys(home, config(), { now: t0 })
    const { kid } = await loadSigningKey(home)
    expect(report).toEqual({
      created: [`keys/${kid}.private.pem`, 'keys/jwks.json', 'keys/keys.json'],
      kept: [],
    })
    expect((await stat(home.path('keys', `${kid}.private.pem`))).mode & 0o777).toBe(0o600)
    const jwks = await readJson<{ keys: Record<string, unknown>[] }>('jwks.json')
    expect(jwks.keys).toHaveLength(1)
    expect(Object.keys(jwks.keys[0]).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x'])
    expect(jwks.keys[0]).toMatchObject({ kty: 'OKP', crv: 'Ed25519', kid, alg: 'EdDSA', use: 'sig' })
    expect(await readJson('keys.json')).toEqual({
      version: 1,
      keys: { [kid]: { alg: 'EdDSA', created_at: t0.toISOString(), status: 'current', retire_at: null } },
    })
  })

  it('is idempotent: a second run keeps every file byte-identical and reports it kept', async () => {
    await ensureJwtKeys(home, config())
    const before = await snapshot()
    const report = await ensureJwtKeys(home, config({ algorithm: 'RS256' }))
    expect(report.created).toEqual([])
    expect(report.kept).toHaveLength(3)
    expect(report.kept).toContain('keys/jwks.json')
    expect(await snapshot()).toEqual(before)
  })

  it('rebuilds a deleted jwks.json from the kept keys', async () => {
    await ensureJwtKeys(home, config())
    const before = await snapshot()
    await rm(home.path('keys', 'jwks.json'))
    const report = await ensureJwtKeys(home, config())
    expect(report.created).toEqual(['keys/jwks.json'])
    expect(await snapshot()).toEqual(before)
  })

  it('force makes a fresh set: old kid leaves the JWKS and its private key is deleted', async () => {
    const first = await generateKeys(home, config(), { now: t0 })
    const token = await signWithCurrent()
    const second = await generateKeys(home, config(), { force: true, alg: 'ES256', now: days(1) })
    expect(second.kid).not.toBe(first.kid)
    expect(second.alg).toBe('ES256')
    expect(second.removed).toEqual([`keys/${first.kid}.private.pem`])
    const jwks = await readJson<{ keys: { kid: string }[] }>('jwks.json')
    expect(jwks.keys.map((k) => k.kid)).toEqual([second.kid])
    await expect(verifyWithJwksFile(token)).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey)
    const set = await readJson<{ keys: Record<string, { status: string }> }>('keys.json')
    expect(set.keys[first.kid].status).toBe('retired')
  })

  it.each(JWT_ALGORITHMS)('uses config.jwt.algorithm %s for the first key', async (alg) => {
    const result = await generateKeys(home, config({ algorithm: alg }))
    expect(result.alg).toBe(alg)
    const { privateKey } = await loadSigningKey(home)
    const token = await new SignJWT({}).setProtectedHeader({ alg, kid: result.kid }).sign(privateKey)
    await expect(verifyWithJwksFile(token, [alg])).resolves.toMatchObject({
      protectedHeader: { kid: result.kid },
    })
  })

  it('kept private keys stay loadable by jose as PKCS#8', async () => {
    const { kid } = await generateKeys(home, config({ algorithm: 'ES256' }))
    const pem = await readFile(home.path('keys', `${kid}.private.pem`), 'utf8')
    await expect(importPKCS8(pem, 'ES256')).resolves.toBeDefined()
  })
})

describe('rotate', () => {
  it('a token signed before rotation still verifies against jwks.json after it; new tokens use the new kid', async () => {
    const first = await generateKeys(home, config(), { now: t0 })
    const before = await signWithCurrent()
    const rotated = await rotateKeys(home, config(), { now: days(1) })
    expect(rotated.current.kid).not.toBe(first.kid)
    expect(rotated.previous.map((k) => k.kid)).toEqual([first.kid])
    expect(rotated.previous[0].retire_at).toBe(days(2).toISOString())
    expect(rotated.created).toEqual([
      `keys/${rotated.current.kid}.private.pem`,
      'keys/jwks.json',
      'keys/keys.json',
    ])
    expect(rotated.jwks).toBe('keys/jwks.json')

    const old = await verifyWithJwksFile(before)
    expect(old.protectedHeader.kid).toBe(first.kid)
    expect(old.payload.sub).toBe('alice')
    const after = await signWithCurrent()
    expect((await verifyWithJwksFile(after)).protectedHeader.kid).toBe(rotated.current.kid)
    const jwks = await readJson<{ keys: { kid: string }[] }>('jwks.json')
    expect(jwks.keys.map((k) => k.kid)).toEqual([rotated.current.kid, first.kid])
  })

  it('after the overlap the old kid leaves the JWKS and its private key is deleted (by list)', async () => {
    const first = await generateKeys(home, config(), { now: t0 })
    const token = await signWithCurrent('30d')
    const rotated = await rotateKeys(home, config({ overlap_days: 2 }), { now: days(1) })

    // Still inside the overlap: listing changes nothing.
    const during = await listKeys(home, config(), { now: days(2.5) })
    expect(during.retired).toEqual([])
    expect((await loadJwks(home, { now: days(2.5) })).keys.map((k) => k.kid)).toContain(first.kid)

    // loadJwks already stops trusting the old key once due, even before anything is pruned.
    expect((await loadJwks(home, { now: days(3) })).keys.map((k) => k.kid)).toEqual([rotated.current.kid])

    const listed = await listKeys(home, config(), { now: days(3) })
    expect(listed.retired).toEqual([first.kid])
    expect(listed.removed).toEqual([`keys/${first.kid}.private.pem`])
    expect(listed.keys.map((k) => [k.kid, k.status])).toEqual([
      [rotated.current.kid, 'current'],
      [first.kid, 'retired'],
    ])
    const jwks = await readJson<{ keys: { kid: string }[] }>('jwks.json')
    expect(jwks.keys.map((k) => k.kid)).toEqual([rotated.current.kid])
    await expect(stat(home.path('keys', `${first.kid}.private.pem`))).rejects.toMatchObject({
      code: 'ENOENT',
    })
    await expect(verifyWithJwksFile(token)).rejects.toBeInstanceOf(errors.JWKSNoMatchingKey)
  })

  it('keeps every previous key until its own retire_at', async () => {
    const a = await generateKeys(home, config(), { now: t0 })
    const b = await rotateKeys(home, config({ overlap_days: 3 }), { now: days(10) })
    const c = await rotateKeys(home, config({ overlap_days: 3 }), { now: days(12) })
    expect(c.retired).toEqual([])
    expect(c.removed).toEqual([])
    expect(c.previous.map((k) => k.kid)).toEqual([b.current.kid, a.kid])
    const kids = async () => (await readJson<{ keys: { kid: string }[] }>('jwks.json')).keys.map((k) => k.kid)
    expect(await kids()).toEqual([c.current.kid, b.current.kid, a.kid])
    expect((await pruneKeys(home, { now: days(13.5) })).retired).toEqual([a.kid])
    expect(await kids()).toEqual([c.current.kid, b.current.kid])
    expect((await pruneKeys(home, { now: days(15) })).retired).toEqual([b.current.kid])
    expect(await kids()).toEqual([c.current.kid])
  })

  it('retires in the same rotate a previous key that is already due', async () => {
    const a = await generateKeys(home, config(), { now: t0 })
    await rotateKeys(home, config({ overlap_days: 1 }), { now: days(1) })
    const third = await rotateKeys(home, config({ overlap_days: 1 }), { now: days(5) })
    expect(third.retired).toEqual([a.kid])
    expect(third.removed).toEqual([`keys/${a.kid}.private.pem`])
    expect(third.previous).toHaveLength(1)
  })

  it('new key algorithm: the flag wins, then config.jwt.algorithm, then the current key', async () => {
    await generateKeys(home, config({ algorithm: 'ES256' }))
    expect((await rotateKeys(home, config())).current.alg).toBe('ES256')
    expect((await rotateKeys(home, config({ algorithm: 'RS256' }))).current.alg).toBe('RS256')
    expect((await rotateKeys(home, config({ algorithm: 'RS256' }), { alg: 'EdDSA' })).current.alg).toBe(
      'EdDSA',
    )
  })

  it('warns when the overlap is shorter than the access-token lifetime', async () => {
    const a = await generateKeys(home, config())
    expect((await rotateKeys(home, config())).warnings).toEqual([])
    const short = await rotateKeys(home, config({ overlap_days: 0 }))
    expect(short.warnings[0]).toMatch(
      /overlap_days \(0\) is shorter than the access token lifetime \(900 s\)/,
    )
    // With no overlap the key demoted by this rotation is retired at once; the earlier one keeps its day.
    expect(short.previous.map((k) => k.kid)).toEqual([a.kid])
    expect(short.retired).toHaveLength(1)
    expect(short.retired).not.toContain(a.kid)
  })

  it('fails with KEYS_MISSING and a hint when there is no key yet', async () => {
    const err = await expectCode(rotateKeys(home, config()), 'KEYS_MISSING')
    expect(err.hint).toContain('helix keys generate')
    expect(err.exitCode).toBe(2)
    await expect(readdir(home.path('keys'))).rejects.toMatchObject({ code: 'ENOENT' })
  })
})

describe('list and prune', () => {
  it('lists kid, alg, status, created, age and retire_at, and warns when the current key is old', async () => {
    const a = await generateKeys(home, config(), { now: t0 })
    const fresh = await listKeys(home, config(), { now: days(5) })
    expect(fresh.keys).toEqual([
      {
        kid: a.kid,
        alg: 'EdDSA',
        status: 'current',
        created_at: t0.toISOString(),
        age_days: 5,
        retire_at: null,
      },
    ])
    expect(fresh.warnings).toEqual([])
    const old = await listKeys(home, config({ rotate_after_days: 30 }), { now: days(31) })
    expect(old.warnings[0]).toContain(`${a.kid} is 31 days old`)
    expect(old.warnings[0]).toContain('helix keys rotate')
  })

  it('prune deletes leftover private keys of retired kids and reports nothing new otherwise', async () => {
    const a = await generateKeys(home, config(), { now: t0 })
    const pem = await readFile(home.path('keys', `${a.kid}.private.pem`), 'utf8')
    await generateKeys(home, config(), { force: true, now: days(1) })
    // A crash between the commit and the delete would leave the retired key's file behind.
    await writeFile(home.path('keys', `${a.kid}.private.pem`), pem, { mode: 0o600 })
    const pruned = await pruneKeys(home, { now: days(2) })
    expect(pruned.retired).toEqual([])
    expect(pruned.removed).toEqual([`keys/${a.kid}.private.pem`])
    expect((await pruneKeys(home, { now: days(2) })).removed).toEqual([])
  })

  it('list and prune fail with KEYS_MISSING without keys', async () => {
    await expectCode(listKeys(home, config()), 'KEYS_MISSING')
    await expectCode(pruneKeys(home), 'KEYS_MISSING')
  })

  it('warns when no key is current', async () => {
    const a = await generateKeys(home, config(), { now: t0 })
    const set = await readJson<{ keys: Record<string, { status: string; retire_at: string | null }> }>(
      'keys.json',
    )
    set.keys[a.kid] = { ...set.keys[a.kid], status: 'previous', retire_at: days(100).toISOString() }
    await writeFile(home.path('keys', 'keys.json'), JSON.stringify(set))
    const listed = await listKeys(home, config(), { now: days(1) })
    expect(listed.warnings[0]).toContain('No current signing key')
  })
})

describe('loadSigningKey / loadJwks', () => {
  it('give the current key and the trusted public set', async () => {
    const a = await generateKeys(home, config({ algorithm: 'RS256' }))
    const key = await loadSigningKey(home)
    expect(key.kid).toBe(a.kid)
    expect(key.alg).toBe('RS256')
    expect(key.privateKey.type).toBe('private')
    const jwks = await loadJwks(home)
    expect(jwks.keys).toHaveLength(1)
    expect(Object.keys(jwks.keys[0]).sort()).toEqual(['alg', 'e', 'kid', 'kty', 'n', 'use'])
  })

  it('fail with KEYS_MISSING when nothing was generated', async () => {
    const err = await expectCode(loadSigningKey(home), 'KEYS_MISSING')
    expect(err.hint).toContain('helix keys generate')
    await expectCode(loadJwks(home), 'KEYS_MISSING')
  })

  it('loadJwks drops keys keys.json does not publish, keys with another alg, and any private member', async () => {
    const a = await generateKeys(home, config())
    const jwks = await readJson<{ keys: Record<string, unknown>[] }>('jwks.json')
    jwks.keys[0].d = 'leaked'
    jwks.keys.push(
      { ...jwks.keys[0], kid: 'x'.repeat(43) },
      { ...jwks.keys[0], alg: 'RS256' },
      { kty: 'OKP' },
    )
    await writeFile(home.path('keys', 'jwks.json'), JSON.stringify(jwks))
    const loaded = await loadJwks(home)
    expect(loaded.keys).toHaveLength(1)
    expect(loaded.keys[0].kid).toBe(a.kid)
    expect(loaded.keys[0]).not.toHaveProperty('d')
  })
})

describe('damaged key files are KEYS_CORRUPT, never a crash', () => {
  const setFile = () => home.path('keys', 'keys.json')

  it.each([
    ['not JSON', '{oops', /not valid JSON/],
    ['wrong schema', JSON.stringify({ version: 2, keys: {} }), /does not match its schema/],
    [
      'bad kid',
      JSON.stringify({
        version: 1,
        keys: { '../x': { alg: 'EdDSA', created_at: 'x', status: 'current', retire_at: null } },
      }),
      /invalid kid/,
    ],
    [
      'bad date',
      JSON.stringify({
        version: 1,
        keys: {
          ['A'.repeat(43)]: { alg: 'EdDSA', created_at: 'yesterday', status: 'current', retire_at: null },
        },
      }),
      /not ISO 8601/,
    ],
  ])('keys.json %s', async (_name, text, message) => {
    await generateKeys(home, config())
    await writeFile(setFile(), text)
    const err = await expectCode(loadSigningKey(home), 'KEYS_CORRUPT')
    expect(err.message).toMatch(message)
    expect(err.hint).toContain('helix keys restore')
  })

  it('two current keys', async () => {
    const a = await generateKeys(home, config())
    const set = await readJson<{ keys: Record<string, unknown> }>('keys.json')
    set.keys['B'.repeat(43)] = set.keys[a.kid]
    await writeFile(setFile(), JSON.stringify(set))
    await expectCode(rotateKeys(home, config()), 'KEYS_CORRUPT')
  })

  it('a missing or foreign private key', async () => {
    const a = await generateKeys(home, config(), { now: t0 })
    await rotateKeys(home, config(), { now: days(0.1) })
    const { kid: b } = await loadSigningKey(home)
    const pemA = await readFile(home.path('keys', `${a.kid}.private.pem`))
    // The previous key's file swapped for the current one's: its thumbprint no longer matches.
    await writeFile(
      home.path('keys', `${a.kid}.private.pem`),
      await readFile(home.path('keys', `${b}.private.pem`)),
    )
    expect(
      (await expectCode(rotateKeys(home, config(), { now: days(0.2) }), 'KEYS_CORRUPT')).message,
    ).toMatch(/another thumbprint/)
    await writeFile(home.path('keys', `${a.kid}.private.pem`), 'garbage')
    expect(
      (await expectCode(rotateKeys(home, config(), { now: days(0.2) }), 'KEYS_CORRUPT')).message,
    ).toMatch(/not a valid EdDSA/)
    await writeFile(home.path('keys', `${a.kid}.private.pem`), pemA)
    await rm(home.path('keys', `${b}.private.pem`))
    expect((await expectCode(loadSigningKey(home), 'KEYS_CORRUPT')).message).toMatch(/missing/)
    await expectCode(generateKeys(home, config()), 'KEYS_CORRUPT')
  })

  it('a current key file that is garbage or of the wrong type', async () => {
    const a = await generateKeys(home, config())
    await writeFile(home.path('keys', `${a.kid}.private.pem`), 'garbage')
    expect((await expectCode(loadSigningKey(home), 'KEYS_CORRUPT')).message).toMatch(/cannot be parsed/)
    const other = await import('node:crypto').then(
      (c) => c.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey,
    )
    await writeFile(home.path('keys', `${a.kid}.private.pem`), other.export({ type: 'pkcs8', format: 'pem' }))
    expect((await expectCode(loadSigningKey(home), 'KEYS_CORRUPT')).message).toMatch(/not an EdDSA key/)
  })

  it('jwks.json that is not a key set', async () => {
    await generateKeys(home, config())
    await writeFile(home.path('keys', 'jwks.json'), '{"nokeys":true}')
    await expectCode(loadJwks(home), 'KEYS_CORRUPT')
  })
})
