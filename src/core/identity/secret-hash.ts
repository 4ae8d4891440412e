import { createHash, timingSafeEqual } from 'node:crypto'

/**
 * SHA-256 of a high-entropy secret (API key, refresh token, e-mail token), hex. A slow hash is not
 * needed: with ≥ 128 random bits there is nothing to brute-force (ASVS V11.4.2 allows it).
 */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex')
}

/** Constant-time comparison of two hex digests of equal length. */
export function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8')
  const y = Buffer.from(b, 'utf8')
  return x.length === y.length && timingSafeEqual(x, y)
}
