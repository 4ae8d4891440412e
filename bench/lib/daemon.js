// Starts the built `helix serve` as a child process on loopback and stops it with SIGTERM.
import { HELIX_BIN, startListening } from '../support/processes.js'

/**
 * Spawns `helix serve --dir <dir> --port 0 …` (with --no-auth unless `auth`) and resolves with
 * { url, pid, stop } once it prints "listening on <url>"; `stop()` resolves with its exit code.
 * `nodeArgs` go to node itself (e.g. --cpu-prof); the env BENCH_DAEMON_NODE_ARGS adds more.
 */
export async function startDaemon(dir, { args = [], env = {}, nodeArgs = [], auth = false, timeoutMs } = {}) {
  const extraNodeArgs = process.env.BENCH_DAEMON_NODE_ARGS?.split(' ').filter(Boolean) ?? []
  const daemon = await startListening(
    HELIX_BIN,
    ['serve', '--dir', dir, '--host', '127.0.0.1', '--port', '0', ...(auth ? [] : ['--no-auth']), ...args],
    { env: { HELIX_LOG_LEVEL: 'warn', ...env }, nodeArgs: [...nodeArgs, ...extraNodeArgs], timeoutMs },
  )
  return { ...daemon, pid: daemon.child.pid }
}
