import { describe, expect, it } from 'vitest'
import { generateOpaqueToken, isWellFormedOpaqueToken } from '../../../src/core/identity/opaque-token.js'
import { hashSecret, sameDigest } from '../../../src/core/identity/secret-hash.js'

describe('opaque tokens', () => {
  it('are 256-bit base64url by default and stored as their SHA-256', () => {
    const t = generateOpaqueToken()
    expect(Buffer.from(t.token, 'base64url')).toHaveLength(32)
    expect(t.hash).toBe(hashSecret(t.token))
    expect(isWellFormedOpaqueToken(t.token)).toBe(true)
  })

  it('never fall below 128 bits', () => {
    expect(Buffer.from(generateOpaqueToken(4).token, 'base64url')).toHaveLength(16)
  })

  it('shape check refuses junk before any lookup', () => {
    expect(isWellFormedOpaqueToken('short')).toBe(false)
    expect(isWellFormedOpaqueToken('a'.repeat(200))).toBe(false)
    expect(isWellFormedOpaqueToken(`${'a'.repeat(30)}=`)).toBe(false)
  })

  it('compares digests in constant time', () => {
    expect(sameDigest(hashSecret('a'), hashSecret('a'))).toBe(true)
    expect(sameDigest(hashSecret('a'), hashSecret('b'))).toBe(false)
    expect(sameDigest('ab', 'abc')).toBe(false)
  })
})
