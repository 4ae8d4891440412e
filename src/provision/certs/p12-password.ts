import { randomBytes } from 'node:crypto'
import { UserError } from '../../shared/errors.js'

/** 24 random bytes = 192 bits, base64url so it pastes into shells and curl's --cert 'file:password'. */
export function generateP12Password(): string {
  return randomBytes(24).toString('base64url')
}

/** ASVS 5.0 V6.2.1: user-chosen secrets of at least 8 characters. */
const MIN_LENGTH = 8

export function validateP12Password(password: string): string {
  if (password.length < MIN_LENGTH) {
    throw new UserError(
      'P12_PASSWORD_INVALID',
      `The PKCS#12 password must have at least ${MIN_LENGTH} characters.`,
      {
        hint: 'Choose a longer --p12-password, or leave it out and Helix generates a strong one (printed once).',
      },
    )
  }
  return password
}
