import { randomBytes } from 'node:crypto'

/**
 * A random positive serial with 128 bits of entropy (CA/Browser Forum BR 7.1 asks for at least 64).
 * A 0x01 lead byte keeps the DER INTEGER positive and minimal while all 16 random bytes stay random.
 */
export function randomSerialNumber(): string {
  return `01${randomBytes(16).toString('hex')}`
}
