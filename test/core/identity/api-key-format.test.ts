import { describe, expect, it } from 'vitest'
import {
  API_KEY_LENGTH,
  displayParts,
  generateApiKey,
  isValidApiKey,
  looksLikeApiKey,
} from '../../../src/core/identity/api-key-format.js'
import { BASE62_ALPHABET, encodeBase62, randomBase62 } from '../../../src/core/identity/base62.js'
import { hashSecret } from '../../../src/core/identity/secret-hash.js'

describe('API key format', () => {
  it('generates hx_ + 30 base62 + 6 checksum characters, hashed with SHA-256', () => {
    const k = generateApiKey()
    expect(k.key).toMatch(/^hx_[0-9A-Za-z]{36}$/)
    expect(k.key).toHaveLength(API_KEY_LENGTH)
    expect(k.hash).toBe(hashSecret(k.key))
    expect(k.hash).toMatch(/^[0-9a-f]{64}$/)
    expect(k.prefix).toBe(k.key.slice(0, 7))
    expect(k.last4).toBe(k.key.slice(-4))
    expect(isValidApiKey(k.key)).toBe(true)
    expect(looksLikeApiKey(k.key)).toBe(true)
  })

  it('carries at least 128 random bits', () => {
    expect(30 * Math.log2(62)).toBeGreaterThan(128)
    const keys = new Set(Array.from({ length: 2000 }, () => generateApiKey().key))
    expect(keys.size).toBe(2000)
  })

  it('rejects every single-character typo without a lookup', () => {
    const { key } = generateApiKey()
    let rejected = 0
    let tried = 0
    for (let i = 3; i < key.length; i++) {
      const replacement = key[i] === 'a' ? 'b' : 'a'
      const typo = key.slice(0, i) + replacement + key.slice(i + 1)
      tried++
      if (!isValidApiKey(typo)) rejected++
    }
    expect(rejected).toBe(tried)
    const swapped = key.slice(0, 5) + key[6] + key[5] + key.slice(7)
    if (key[5] !== key[6]) expect(isValidApiKey(swapped)).toBe(false)
  })

  it('rejects wrong prefix, length and alphabet', () => {
    const { key } = generateApiKey()
    expect(isValidApiKey(`hy_${key.slice(3)}`)).toBe(false)
    expect(isValidApiKey(key.slice(0, -1))).toBe(false)
    expect(isValidApiKey(`${key}0`)).toBe(false)
    expect(isValidApiKey(`${key.slice(0, 10)}-${key.slice(11)}`)).toBe(false)
    expect(looksLikeApiKey('eyJhbGciOi')).toBe(false)
  })

  it('display parts never reveal more than 8 characters', () => {
    expect(displayParts('hx_ABCDEFGHIJ')).toEqual({ prefix: 'hx_ABCD', last4: 'GHIJ' })
  })

  it('base62 encodes and samples the full alphabet', () => {
    expect(encodeBase62(0, 6)).toBe('000000')
    expect(encodeBase62(61)).toBe('z')
    expect(encodeBase62(62)).toBe('10')
    expect(encodeBase62(0xffffffff)).toHaveLength(6)
    const sample = randomBase62(20000)
    expect(new Set(sample).size).toBe(BASE62_ALPHABET.length)
  })
})
