import { UserError } from '../shared/errors.js'

/**
 * Parsers for the human-friendly flag values of `helix bench` ("2s", "10%", "1,8,32", "x=1,3,48,192").
 * Each throws a UserError naming the flag, so a typo is one clear line.
 */

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** "250ms", "2s", "1.5m", "1h"; a bare number is seconds. Returns milliseconds. */
export function parseDuration(value: string, flag: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value)
  if (!match) {
    throw new UserError(
      'BENCH_BAD_FLAG',
      `--${flag} must be a duration like 500ms, 10s or 2m (got "${value}")`,
      {
        hint: `Pass --${flag} 10s.`,
      },
    )
  }
  return Math.round(Number(match[1]) * DURATION_UNITS[match[2] ?? 's'])
}

/** "10%" or "0.1" → 0.1. */
export function parseFraction(value: string, flag: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(%)?\s*$/.exec(value)
  const fraction = match ? Number(match[1]) / (match[2] ? 100 : 1) : Number.NaN
  if (!match || fraction < 0 || (!match[2] && fraction > 1)) {
    throw new UserError('BENCH_BAD_FLAG', `--${flag} must be a percentage like 10% (got "${value}")`, {
      hint: `Pass --${flag} 10%.`,
    })
  }
  return fraction
}

/** "1,8,32" → [1, 8, 32]; every entry a positive integer. */
export function parsePositiveIntList(value: string, flag: string): number[] {
  const parts = value.split(',').map((p) => p.trim())
  const numbers = parts.map(Number)
  if (parts.some((p) => !/^\d+$/.test(p)) || numbers.some((n) => n < 1)) {
    throw new UserError(
      'BENCH_BAD_FLAG',
      `--${flag} must be positive integers separated by commas (got "${value}")`,
      {
        hint: `Pass --${flag} 1,8,32.`,
      },
    )
  }
  return numbers
}

/** "100,500" → [100, 500]; rates may be fractional but must be positive. */
export function parseRateList(value: string, flag: string): number[] {
  const numbers = value.split(',').map((p) => Number(p.trim()))
  if (numbers.some((n) => !Number.isFinite(n) || n <= 0)) {
    throw new UserError(
      'BENCH_BAD_FLAG',
      `--${flag} must be positive numbers separated by commas (got "${value}")`,
      {
        hint: `Pass --${flag} 100 (requests per second).`,
      },
    )
  }
  return numbers
}

/** Repeated "name=1,3,48,192" → { name: [1, 3, 48, 192] }. */
export function parseShapes(values: string[] | undefined): Record<string, number[]> {
  const shapes: Record<string, number[]> = {}
  for (const value of values ?? []) {
    const match = /^([^=]+)=([\d,\s]*)$/.exec(value)
    if (!match) {
      throw new UserError('BENCH_BAD_FLAG', `--shape must look like input=1,3,48,192 (got "${value}")`, {
        hint: 'Give each dynamic input its full shape, e.g. --shape x=1,3,48,192.',
      })
    }
    shapes[match[1].trim()] = match[2].trim() === '' ? [] : parsePositiveIntList(match[2], 'shape')
  }
  return shapes
}

/** Repeated "Name: value" → headers object (names lower-cased). */
export function parseHeaders(values: string[] | undefined): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const value of values ?? []) {
    const at = value.indexOf(':')
    if (at <= 0) {
      throw new UserError('BENCH_BAD_FLAG', `--header must look like "Name: value" (got "${value}")`, {
        hint: 'Pass --header "X-Request-Source: bench".',
      })
    }
    headers[value.slice(0, at).trim().toLowerCase()] = value.slice(at + 1).trim()
  }
  return headers
}
