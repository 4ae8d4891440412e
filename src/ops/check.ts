/** One line of `helix doctor`: a named check, its outcome and one line of advice. */
export type CheckStatus = 'ok' | 'warn' | 'fail'

export interface CheckResult {
  name: string
  status: CheckStatus
  message: string
  /** What to try, when the status is not ok. */
  advice?: string
}

export function ok(name: string, message: string): CheckResult {
  return { name, status: 'ok', message }
}
export function warn(name: string, message: string, advice: string): CheckResult {
  return { name, status: 'warn', message, advice }
}
export function fail(name: string, message: string, advice: string): CheckResult {
  return { name, status: 'fail', message, advice }
}
