import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { validateCommonName } from '../../../src/provision/certs/issuance.js'
import { generateP12Password, validateP12Password } from '../../../src/provision/certs/p12-password.js'
import { generateKeyPair, importPrivateKeyPem, RSA_BITS } from '../../../src/state/certs/key-pair.js'
import { randomSerialNumber } from '../../../src/state/certs/serial-number.js'
import { parseSubjectAltName, serverSubjectAltNames } from '../../../src/state/certs/subject-alt-names.js'
import { expiryWarning } from '../../../src/state/certs/summary.js'
import { caValidity, daysUntil, leafValidity, MAX_LEAF_DAYS } from '../../../src/state/certs/validity.js'
import { configWith } from './helpers.js'

describe('validity', () => {
  const now = new Date('2026-01-10T00:00:00Z')
  it('runs a leaf for the given days from a few minutes ago', () => {
    const v = leafValidity(90, now)
    expect(v.notAfter.toISOString()).toBe('2026-04-10T00:00:00.000Z')
    expect(now.getTime() - v.notBefore.getTime()).toBe(5 * 60 * 1000)
    expect(leafValidity(MAX_LEAF_DAYS, now).notAfter.toISOString()).toBe('2027-02-11T00:00:00.000Z')
  })
  it.each([0, 398, 1000, 1.5, Number.NaN])('rejects %s days with CERT_DAYS_INVALID', (days) => {
    expect(() => leafValidity(days, now)).toThrow(
      expect.objectContaining({ code: 'CERT_DAYS_INVALID', exitCode: 2 }),
    )
  })
  it('runs the CA for calendar years', () => {
    expect(caValidity(10, now).notAfter.toISOString()).toBe('2036-01-10T00:00:00.000Z')
  })
  it('counts whole days left, negative once expired', () => {
    expect(daysUntil(new Date('2026-01-12T12:00:00Z'), now)).toBe(2)
    expect(daysUntil(new Date('2026-01-09T00:00:00Z'), now)).toBe(-1)
  })
  it('warns when expired or under the threshold', () => {
    expect(expiryWarning('certs/x.crt', -1, 30)).toBe('certs/x.crt has expired.')
    expect(expiryWarning('certs/x.crt', 1, 30)).toBe('certs/x.crt expires in 1 day (under 30).')
    expect(expiryWarning('certs/x.crt', 29, 30)).toBe('certs/x.crt expires in 29 days (under 30).')
    expect(expiryWarning('certs/x.crt', 30, 30)).toBeUndefined()
  })
})

describe('subject alternative names', () => {
  it('classifies DNS names and IPs and rejects anything else', () => {
    expect(parseSubjectAltName(' API.Example.com ', '--san')).toEqual({
      type: 'dns',
      value: 'api.example.com',
    })
    expect(parseSubjectAltName('*.example.com', '--san')).toEqual({ type: 'dns', value: '*.example.com' })
    expect(parseSubjectAltName('10.0.0.5', '--san')).toEqual({ type: 'ip', value: '10.0.0.5' })
    expect(parseSubjectAltName('fe80::1', '--san')).toEqual({ type: 'ip', value: 'fe80::1' })
    expect(() => parseSubjectAltName('bad name!', '--san')).toThrow(
      expect.objectContaining({ code: 'INVALID_NAME', exitCode: 2 }),
    )
  })
  it('always adds the loopback names, once, after domain, sans, extras and previous names', () => {
    const config = configWith({ domain: 'api.example.com', sans: ['10.0.0.5', 'localhost'] })
    const names = serverSubjectAltNames(
      config,
      ['extra.example.com'],
      [
        { type: 'ip', value: '0:0:0:0:0:0:0:1' },
        { type: 'dns', value: 'old.example.com' },
      ],
    )
    expect(names.map((n) => n.value)).toEqual([
      'api.example.com',
      '10.0.0.5',
      'localhost',
      'extra.example.com',
      '0:0:0:0:0:0:0:1',
      'old.example.com',
      '127.0.0.1',
    ])
  })
})

describe('serial numbers and passwords', () => {
  it('gives positive 128-bit random serials', () => {
    const serials = new Set(Array.from({ length: 100 }, randomSerialNumber))
    expect(serials.size).toBe(100)
    for (const s of serials) expect(s).toMatch(/^01[0-9a-f]{32}$/)
  })
  it('generates base64url passwords of 192 bits and checks given ones', () => {
    const password = generateP12Password()
    expect(password).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(Buffer.from(password, 'base64url').length * 8).toBeGreaterThanOrEqual(128)
    expect(validateP12Password('longenough')).toBe('longenough')
    expect(() => validateP12Password('short')).toThrow(
      expect.objectContaining({ code: 'P12_PASSWORD_INVALID' }),
    )
  })
  it('accepts sane common names only', () => {
    expect(validateCommonName(' ci-runner ')).toBe('ci-runner')
    expect(() => validateCommonName('')).toThrow(expect.objectContaining({ code: 'CERT_NAME_INVALID' }))
    expect(() => validateCommonName('x'.repeat(65))).toThrow(
      expect.objectContaining({ code: 'CERT_NAME_INVALID' }),
    )
    expect(() => validateCommonName('a\nb')).toThrow(expect.objectContaining({ code: 'CERT_NAME_INVALID' }))
  })
})

describe('key pairs', () => {
  it('uses 3072-bit RSA for the CA and 2048 for leaves', async () => {
    expect(RSA_BITS).toEqual({ ca: 3072, leaf: 2048 })
    const leaf = await generateKeyPair('rsa', 'leaf')
    expect((leaf.publicKey.algorithm as unknown as { modulusLength: number }).modulusLength).toBe(2048)
  })
  it('imports PKCS#8 and the older PKCS#1/SEC1 PEM forms', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs1',
      format: 'pem',
    }) as string
    expect((await importPrivateKeyPem(rsa, 'k')).keyType).toBe('rsa')
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
      type: 'sec1',
      format: 'pem',
    }) as string
    expect((await importPrivateKeyPem(ec, 'k')).keyType).toBe('ecdsa')
  })
  it('names a corrupt or unsupported key file in a UserError', async () => {
    await expect(importPrivateKeyPem('not a key', 'certs/ca.key')).rejects.toMatchObject({
      code: 'CERT_KEY_CORRUPT',
      exitCode: 2,
      message: expect.stringContaining('certs/ca.key'),
    })
    const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
    await expect(importPrivateKeyPem(ed, 'certs/ca.key')).rejects.toMatchObject({
      code: 'CERT_KEY_UNSUPPORTED',
    })
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    }) as string
    await expect(importPrivateKeyPem(p384, 'certs/ca.key')).rejects.toMatchObject({
      code: 'CERT_KEY_UNSUPPORTED',
    })
  })
})

describe('Reflect metadata shim for @peculiar/x509', () => {
  it('stores metadata per target and inherits it along the prototype chain', async () => {
    await import('../../../src/state/certs/x509-provider.js')
    const reflect = Reflect as unknown as {
      defineMetadata(k: unknown, v: unknown, t: object): void
      getMetadata(k: unknown, t: object): unknown
      getOwnMetadata(k: unknown, t: object): unknown
    }
    class Base {}
    class Derived extends Base {}
    reflect.defineMetadata('design:paramtypes', [String], Base)
    expect(reflect.getMetadata('design:paramtypes', Derived)).toEqual([String])
    expect(reflect.getOwnMetadata('design:paramtypes', Derived)).toBeUndefined()
    expect(reflect.getOwnMetadata('design:paramtypes', Base)).toEqual([String])
    expect(reflect.getMetadata('other', Derived)).toBeUndefined()
  })
})
