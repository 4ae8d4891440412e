import { UserError } from '../../shared/errors.js'
import { COMMON_PASSWORDS_TEXT } from './common-passwords.js'

/** ASVS 5.0 V6.2: at least 8 characters (15 recommended), at least 64 allowed; we allow 128. */
export const PASSWORD_MIN_LENGTH = 8
export const PASSWORD_MAX_LENGTH = 128
export const PASSWORD_RECOMMENDED_LENGTH = 15

let common: Set<string> | undefined

function commonPasswords(): Set<string> {
  common ??= new Set(COMMON_PASSWORDS_TEXT.split('\n').filter((line) => line !== ''))
  return common
}

/** Passwords are compared and hashed in NFC so the same characters typed on two keyboards match. */
export function normalisePassword(password: string): string {
  return password.normalize('NFC')
}

/** Length in Unicode code points (what a user counts), not UTF-16 units. */
function codePoints(text: string): number {
  return [...text].length
}

export interface PasswordVerdict {
  /** Advice to show with an accepted password (ASVS: encourage 15+ characters), if any. */
  advice?: string
}

/**
 * Checks a new password: length only (no composition rules, ASVS V6.2.5) and not in the bundled list of
 * common passwords. Throws a UserError whose message never echoes the password.
 */
export function checkPasswordPolicy(password: string, minLength = PASSWORD_MIN_LENGTH): PasswordVerdict {
  const min = Math.max(PASSWORD_MIN_LENGTH, minLength)
  const normalised = normalisePassword(password)
  const length = codePoints(normalised)
  if (length < min) {
    throw new UserError('PASSWORD_TOO_SHORT', `The password must have at least ${min} characters.`, {
      hint: `Use a passphrase of ${PASSWORD_RECOMMENDED_LENGTH} characters or more; any characters are allowed.`,
    })
  }
  if (length > PASSWORD_MAX_LENGTH) {
    throw new UserError(
      'PASSWORD_TOO_LONG',
      `The password must have at most ${PASSWORD_MAX_LENGTH} characters.`,
      {
        hint: 'Use a shorter passphrase.',
      },
    )
  }
  if (commonPasswords().has(normalised.toLowerCase())) {
    throw new UserError('PASSWORD_COMMON', 'This password is on a list of commonly used passwords.', {
      hint: 'Choose a password that others are unlikely to use, e.g. several unrelated words.',
    })
  }
  return length < PASSWORD_RECOMMENDED_LENGTH
    ? { advice: `Passwords of ${PASSWORD_RECOMMENDED_LENGTH} characters or more are much harder to guess.` }
    : {}
}
