import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execa, type Options } from 'execa'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const HELIX_BIN = join(ROOT, 'bin', 'run.js')

export interface CliResult {
  stdout: string
  stderr: string
  exitCode: number
}

/** Runs the built `helix` binary (npm test builds first) as a user would; never throws on exit codes. */
export async function runHelix(args: string[], options: Options = {}): Promise<CliResult> {
  const result = await execa('node', [HELIX_BIN, ...args], {
    reject: false,
    env: { HELIX_DIR: undefined, ...options.env },
    extendEnv: true,
    stdin: 'ignore',
    timeout: 120_000,
    ...options,
  })
  return { stdout: String(result.stdout), stderr: String(result.stderr), exitCode: result.exitCode ?? -1 }
}

/** Runs `helix … --json` and parses stdout, failing loudly with stderr when the command failed. */
export async function runHelixJson<T = unknown>(args: string[], options: Options = {}): Promise<T> {
  const result = await runHelix([...args, '--json'], options)
  if (result.exitCode !== 0) {
    throw new Error(`helix ${args.join(' ')} exited ${result.exitCode}: ${result.stderr}`)
  }
  return JSON.parse(result.stdout) as T
}

/** A fresh temporary directory; remove it with the returned cleanup. */
export async function tempDir(
  prefix = 'helix-test-',
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) }
}
