// Starts the built `helix serve` as a child process on loopback and stops it with SIGTERM.
import { spawn } from 'node:child_process'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const HELIX_BIN = join(ROOT, 'bin', 'run.js')

/**
 * Spawns `helix serve --dir <dir> --port 0 …` (with --no-auth unless `auth`) and resolves with its
 * URL once it prints "listening on <url>". `nodeArgs` go to node itself (e.g. --cpu-prof); the
 * env BENCH_DAEMON_NODE_ARGS adds more. Rejects when it exits first or does not listen within timeoutMs.
 */
export function startDaemon(
  dir,
  { args = [], env = {}, nodeArgs = [], auth = false, timeoutMs = 60_000 } = {},
) {
  const extraNodeArgs = process.env.BENCH_DAEMON_NODE_ARGS?.split(' ').filter(Boolean) ?? []
  const child = spawn(
    process.execPath,
    [
      ...nodeArgs,
      ...extraNodeArgs,
      HELIX_BIN,
      'serve',
      '--dir',
      dir,
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      ...(auth ? [] : ['--no-auth']),
      ...args,
    ],
    {
      env: { ...process.env, HELIX_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let output = ''
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`helix serve did not listen within ${timeoutMs} ms:\n${output}`))
    }, timeoutMs)
    const onData = (chunk) => {
      output += chunk
      const match = /listening on (https?:\/\/\S+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolvePromise({ url: match[1], child, pid: child.pid, stop: () => stopDaemon(child) })
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`helix serve exited with ${code} before listening:\n${output}`))
    })
  })
}

/** SIGTERM, then wait for the exit code (SIGKILL after 15 s). */
export function stopDaemon(child) {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolvePromise) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolvePromise(code)
    })
    child.kill('SIGTERM')
  })
}
