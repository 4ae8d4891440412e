import { UserError } from '../../shared/errors.js'

/** Browsers reject TLS leaves valid for more than 398 days (Apple/Chrome policy); 397 leaves a margin. */
export const MAX_LEAF_DAYS = 397

/** Certificates start a few minutes in the past so a peer whose clock lags a little still accepts them. */
const CLOCK_SKEW_MS = 5 * 60 * 1000
const DAY_MS = 24 * 60 * 60 * 1000

export interface Validity {
  notBefore: Date
  notAfter: Date
}

/** Validity of a leaf: from now (minus skew) for `days` days; more than 397 days is a UserError. */
export function leafValidity(days: number, now = new Date()): Validity {
  if (!Number.isInteger(days) || days < 1 || days > MAX_LEAF_DAYS) {
    throw new UserError(
      'CERT_DAYS_INVALID',
      `A leaf certificate must be valid for 1 to ${MAX_LEAF_DAYS} days, not ${days}.`,
      {
        hint: `Pass --days between 1 and ${MAX_LEAF_DAYS} (browsers reject longer leaves; 90 is the norm).`,
      },
    )
  }
  return {
    notBefore: new Date(now.getTime() - CLOCK_SKEW_MS),
    notAfter: new Date(now.getTime() + days * DAY_MS),
  }
}

/** Validity of the CA: `years` calendar years from now. */
export function caValidity(years: number, now = new Date()): Validity {
  const notAfter = new Date(now)
  notAfter.setUTCFullYear(notAfter.getUTCFullYear() + years)
  return { notBefore: new Date(now.getTime() - CLOCK_SKEW_MS), notAfter }
}

/** Whole days from `now` until `date` (negative once expired). */
export function daysUntil(date: Date, now = new Date()): number {
  return Math.floor((date.getTime() - now.getTime()) / DAY_MS)
}
