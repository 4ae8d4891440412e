import { randomBytes } from 'node:crypto'

export const BASE62_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'

/** Encodes a non-negative integer in base62, left-padded with '0' to `width` characters. */
export function encodeBase62(value: bigint | number, width = 0): string {
  let n = BigInt(value)
  let out = ''
  while (n > 0n) {
    out = BASE62_ALPHABET[Number(n % 62n)] + out
    n /= 62n
  }
  return out.padStart(width, '0')
}

/**
 * `length` uniformly random base62 characters from the CSPRNG. Rejection sampling (bytes ≥ 248 are
 * dropped) avoids the modulo bias of byte % 62; each character carries log2(62) ≈ 5.95 bits.
 */
export function randomBase62(length: number): string {
  let out = ''
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) out += BASE62_ALPHABET[byte % 62]
    }
  }
  return out
}
