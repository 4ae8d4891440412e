import { UserError } from '../../shared/errors.js'

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** Parses "90s", "15m", "1h", "7d", "2w" into milliseconds (CLI flags such as --since and --grace). */
export function parseDuration(text: string, flag = 'duration'): number {
  const match = /^(\d+)\s*([smhdw])$/.exec(text.trim())
  if (!match) {
    throw new UserError('INVALID_INPUT', `--${flag} must look like 90s, 15m, 1h, 7d or 2w, not "${text}".`, {
      hint: 'Use a whole number followed by s, m, h, d or w.',
    })
  }
  return Number(match[1]) * UNIT_MS[match[2]]
}

/** A point in time: a duration ago/ahead ("1h") or an ISO 8601 date. */
export function parseWhen(text: string, direction: 'past' | 'future', flag: string, now = Date.now()): Date {
  if (/^\d+\s*[smhdw]$/.test(text.trim())) {
    const ms = parseDuration(text, flag)
    return new Date(direction === 'past' ? now - ms : now + ms)
  }
  const date = new Date(text)
  if (Number.isNaN(date.getTime())) {
    throw new UserError(
      'INVALID_INPUT',
      `--${flag} must be a duration (1h, 7d) or an ISO date, not "${text}".`,
      {
        hint: 'For example --since 1h or --since 2026-01-31T00:00:00Z.',
      },
    )
  }
  return date
}
