import { execa, type ResultPromise } from 'execa'
import { HELIX_BIN } from './cli.js'

/** A real `helix serve` child and the REST URL it printed. */
export interface Served {
  url: string
  child: ResultPromise
  output: () => string
}

/**
 * Starts the built `helix serve` on a free port in `dir` (without authentication unless asked) and
 * resolves with the URL it prints once it listens; rejects with its output if it exits first.
 */
export async function startServe(
  dir: string,
  args: string[] = [],
  options: { auth?: boolean; timeoutMs?: number } = {},
): Promise<Served> {
  const auth = options.auth ? [] : ['--no-auth']
  const child = execa('node', [HELIX_BIN, 'serve', '--dir', dir, '--port', '0', ...auth, ...args], {
    reject: false,
    env: { HELIX_DIR: undefined },
    stdin: 'ignore',
    all: true,
  })
  let output = ''
  const url = await new Promise<string>((resolve, reject) => {
    const timeoutMs = options.timeoutMs ?? 60_000
    const timer = setTimeout(() => reject(new Error(`helix serve did not start:\n${output}`)), timeoutMs)
    child.all?.on('data', (chunk: Buffer) => {
      output += chunk
      const match = /helix serve listening on (\S+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve(match[1])
      }
    })
    child.then((r) => reject(new Error(`helix serve exited ${r.exitCode}:\n${output}`)))
  })
  return { url, child, output: () => output }
}
