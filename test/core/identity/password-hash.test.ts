import { describe, expect, it } from 'vitest'
import {
  hashPassword,
  needsRehash,
  verifyAgainstDummy,
  verifyPassword,
} from '../../../src/core/identity/password-hash.js'

describe('argon2id password hashing', () => {
  it('hashes with argon2id at least m=19456, t=2, p=1 and verifies', async () => {
    const phc = await hashPassword('zebra piano tulip')
    expect(phc).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
    expect(await verifyPassword(phc, 'zebra piano tulip')).toBe(true)
    expect(await verifyPassword(phc, 'zebra piano tulips')).toBe(false)
  })

  it('never goes below the OWASP floor, and uses stronger settings when asked', async () => {
    expect(await hashPassword('x', { memoryKiB: 1024, timeCost: 1, parallelism: 1 })).toMatch(
      /m=19456,t=2,p=1\$/,
    )
    expect(await hashPassword('x', { memoryKiB: 32768, timeCost: 3, parallelism: 1 })).toMatch(
      /m=32768,t=3,p=1\$/,
    )
  })

  it('uses a fresh salt each time', async () => {
    expect(await hashPassword('same')).not.toBe(await hashPassword('same'))
  })

  it('matches the same password typed in decomposed and composed Unicode', async () => {
    const phc = await hashPassword('caf\u00e9 au lait')
    expect(await verifyPassword(phc, 'cafe\u0301 au lait')).toBe(true)
  })

  it('treats malformed or non-argon2id hashes as a mismatch', async () => {
    expect(await verifyPassword('not a hash', 'x')).toBe(false)
    expect(await verifyPassword('$argon2id$v=19$m=garbage', 'x')).toBe(false)
    expect(await verifyPassword('$2b$10$abcdefghijklmnopqrstuu', 'x')).toBe(false)
  })

  it('reports hashes weaker than the configured cost as needing a rehash', async () => {
    const phc = await hashPassword('x')
    expect(needsRehash(phc)).toBe(false)
    expect(needsRehash(phc, { memoryKiB: 65536, timeCost: 2, parallelism: 1 })).toBe(true)
    expect(needsRehash('$2b$whatever')).toBe(true)
  })

  it('the dummy verification always fails', async () => {
    expect(await verifyAgainstDummy('helix-dummy-password-for-timing')).toBe(false)
  })
})
