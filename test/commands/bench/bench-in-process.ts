import { vi } from 'vitest'
import type { BenchResult } from '../../../src/bench/types.js'
import Bench from '../../../src/commands/bench.js'
import { ROOT } from '../../helpers/cli.js'

/** The command in this process (the e2e tests run the built binary): flags → service → outputs. */
export async function benchInProcess(
  args: string[],
): Promise<{ result?: BenchResult; out: string; err: string; exit?: number }> {
  let out = ''
  let err = ''
  // oclif prints through console.log; errors go straight to process.stderr.
  const stdout = vi.spyOn(console, 'log').mockImplementation((...s: unknown[]) => {
    out += `${s.join(' ')}\n`
  })
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    err += String(s)
    return true
  })
  try {
    const result = (await Bench.run(args, ROOT)) as BenchResult
    return { result, out, err }
  } catch (e) {
    return { out, err, exit: (e as { oclif?: { exit?: number } }).oclif?.exit }
  } finally {
    stdout.mockRestore()
    stderr.mockRestore()
  }
}
