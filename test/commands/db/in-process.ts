import { format } from 'node:util'
import type { Command } from '@oclif/core'
import { Errors } from '@oclif/core'
import { ROOT } from '../../helpers/cli.js'

export interface InProcessResult {
  stdout: string
  stderr: string
  exitCode: number
}

/**
 * Runs a command class from src/ inside the test process (so coverage sees it), capturing what it
 * writes; the e2e tests run the same commands through the built binary.
 */
export async function runInProcess(
  command: { run(argv: string[], opts: string): Promise<unknown> } & typeof Command,
  argv: string[],
  env: Record<string, string | undefined> = {},
): Promise<InProcessResult> {
  const out: string[] = []
  const err: string[] = []
  const originalOut = process.stdout.write.bind(process.stdout)
  const originalErr = process.stderr.write.bind(process.stderr)
  const originalLog = console.log
  const originalError = console.error
  // oclif's this.log goes through console.log, which vitest intercepts; take it first.
  console.log = (...args: unknown[]) => {
    out.push(`${format(...args)}\n`)
  }
  console.error = (...args: unknown[]) => {
    err.push(`${format(...args)}\n`)
  }
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]))
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k]
    else process.env[k] = v
  }
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out.push(String(chunk))
    return true
  }) as typeof process.stdout.write
  process.stderr.write = ((chunk: string | Uint8Array) => {
    err.push(String(chunk))
    return true
  }) as typeof process.stderr.write
  let exitCode = 0
  try {
    await command.run(argv, ROOT)
  } catch (e) {
    exitCode = e instanceof Errors.ExitError ? (e.oclif.exit ?? 1) : 99
    if (exitCode === 99) err.push(String(e))
  } finally {
    process.stdout.write = originalOut
    console.log = originalLog
    console.error = originalError
    process.stderr.write = originalErr
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
  return { stdout: out.join(''), stderr: err.join(''), exitCode }
}
