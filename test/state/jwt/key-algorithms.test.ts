import { createPublicKey, generateKeyPairSync } from 'node:crypto'
import { calculateJwkThumbprint, createLocalJWKSet, importPKCS8, jwtVerify, SignJWT } from 'jose'
import { describe, expect, it } from 'vitest'
import {
  generateSigningKey,
  JWT_ALGORITHMS,
  keyMatchesAlgorithm,
  parsePrivatePem,
  publicMembersOnly,
  RSA_MODULUS_BITS,
} from '../../../src/state/jwt/key-algorithms.js'

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']

describe.each(JWT_ALGORITHMS)('signing keys for %s', (alg) => {
  it('kid is the RFC 7638 thumbprint, the JWK is public only, and a token it signs verifies', async () => {
    const key = await generateSigningKey(alg)
    const { kid: _kid, alg: _alg, use, ...members } = key.publicJwk
    expect(key.kid).toBe(await calculateJwkThumbprint(members, 'sha256'))
    expect(key.kid).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(use).toBe('sig')
    expect(key.publicJwk.alg).toBe(alg)
    for (const member of PRIVATE_MEMBERS) expect(key.publicJwk).not.toHaveProperty(member)
    expect(key.privatePem).toMatch(/^-----BEGIN PRIVATE KEY-----/)

    const privateKey = await importPKCS8(key.privatePem, alg)
    const token = await new SignJWT({ sub: 'u1' })
      .setProtectedHeader({ alg, kid: key.kid })
      .setIssuedAt()
      .sign(privateKey)
    const { payload, protectedHeader } = await jwtVerify(
      token,
      createLocalJWKSet({ keys: [key.publicJwk] }),
      { algorithms: [alg] },
    )
    expect(payload.sub).toBe('u1')
    expect(protectedHeader.kid).toBe(key.kid)
    expect(keyMatchesAlgorithm(parsePrivatePem(key.privatePem), alg)).toBe(true)
  })
})

describe('key types', () => {
  it('RS256 keys have a 3072-bit modulus', async () => {
    const key = await generateSigningKey('RS256')
    expect(RSA_MODULUS_BITS).toBeGreaterThanOrEqual(2048)
    expect(createPublicKey(parsePrivatePem(key.privatePem)).asymmetricKeyDetails?.modulusLength).toBe(
      RSA_MODULUS_BITS,
    )
  })

  it('keyMatchesAlgorithm refuses keys of another type, curve or a short RSA modulus', () => {
    const ed = generateKeyPairSync('ed25519').privateKey
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey
    expect(keyMatchesAlgorithm(ed, 'ES256')).toBe(false)
    expect(keyMatchesAlgorithm(p384, 'ES256')).toBe(false)
    expect(keyMatchesAlgorithm(ed, 'RS256')).toBe(false)
    expect(keyMatchesAlgorithm(rsa1024, 'RS256')).toBe(false)
    expect(keyMatchesAlgorithm(p384, 'EdDSA')).toBe(false)
  })

  it('publicMembersOnly drops private members whatever the key type', () => {
    const rsa = {
      kty: 'RSA',
      n: 'n',
      e: 'AQAB',
      d: 'secret',
      p: 'p',
      q: 'q',
      dp: 'x',
      dq: 'y',
      qi: 'z',
      kid: 'k',
      alg: 'RS256',
    }
    expect(publicMembersOnly(rsa)).toEqual({ kty: 'RSA', n: 'n', e: 'AQAB', kid: 'k', alg: 'RS256' })
    expect(publicMembersOnly({ kty: 'OKP', crv: 'Ed25519', x: 'x', d: 'secret', use: 'sig' })).toEqual({
      kty: 'OKP',
      crv: 'Ed25519',
      x: 'x',
      use: 'sig',
    })
    expect(publicMembersOnly({ kty: 'oct', k: 'secret' })).toEqual({ kty: 'oct' })
  })
})
