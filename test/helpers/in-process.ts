import { format } from 'node:util'
import type { Command } from '@oclif/core'
import { vi } from 'vitest'
import { ROOT } from './cli.js'

export interface InProcessResult<T> {
  result?: T
  stdout: string
  stderr: string
  /** 0 on success, else the ExitError's code. */
  exitCode: number
}

/**
 * Runs a command class in this process (so coverage sees src/commands), capturing what it writes.
 * The e2e tests run the same commands through the built binary.
 */
export async function runInProcess<T>(
  command: { run(argv?: string[], opts?: string): Promise<unknown> } & typeof Command,
  argv: string[],
  env: Record<string, string | undefined> = {},
): Promise<InProcessResult<T>> {
  let stdout = ''
  let stderr = ''
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]))
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k]
    else process.env[k] = v
  }
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    stdout += String(chunk)
    return true
  })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    stderr += String(chunk)
    return true
  })
  // oclif prints through console.log / console.error, which vitest intercepts before process.stdout.
  const log = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    stdout += `${format(...args)}\n`
  })
  const error = vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => {
    stderr += `${format(...args)}\n`
  })
  try {
    const result = (await command.run(argv, ROOT)) as T
    return { result, stdout, stderr, exitCode: 0 }
  } catch (error) {
    const code = (error as { oclif?: { exit?: number } }).oclif?.exit
    if (code === undefined) throw error
    return { stdout, stderr, exitCode: code }
  } finally {
    for (const spy of [out, err, log, error]) spy.mockRestore()
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  }
}
