import type { CheckResult } from '../../ops/check.js'

const MARK = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' } as const

/** One line per check, advice indented below the ones that need action. */
export function renderChecks(checks: CheckResult[]): string {
  const width = Math.max(...checks.map((c) => c.name.length))
  const lines: string[] = []
  for (const check of checks) {
    lines.push(`${MARK[check.status]}  ${check.name.padEnd(width)}  ${check.message}`)
    if (check.advice) lines.push(`${' '.repeat(width + 8)}→ ${check.advice}`)
  }
  const failed = checks.filter((c) => c.status === 'fail').length
  const warned = checks.filter((c) => c.status === 'warn').length
  lines.push(
    '',
    failed
      ? `${failed} check(s) failed, ${warned} warning(s).`
      : `All checks passed${warned ? ` (${warned} warning(s))` : ''}.`,
  )
  return lines.join('\n')
}
