// Child processes for the bench scripts: servers that print "listening on <url>", and CLIs whose JSON
// output is the measurement. Everything is bounded by a timeout and stopped by the script.
import { spawn } from 'node:child_process'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const HELIX_BIN = join(ROOT, 'bin', 'run.js')
export const AUTOCANNON_BIN = join(ROOT, 'node_modules', 'autocannon', 'autocannon.js')

/**
 * Starts `node [nodeArgs] script args` and resolves with { url, child, stop } once it prints
 * "listening on <url>"; `stop()` sends SIGTERM (SIGKILL after 15 s) and resolves with the exit code.
 */
export function startListening(script, args = [], { env = {}, nodeArgs = [], timeoutMs = 60_000 } = {}) {
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${script} did not listen within ${timeoutMs} ms:\n${output}`))
    }, timeoutMs)
    const onData = (chunk) => {
      output += chunk
      const match = /listening on (https?:\/\/\S+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolvePromise({ url: match[1], child, stop: () => stop(child) })
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${script} exited with ${code} before listening:\n${output}`))
    })
  })
}

function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise((resolvePromise) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolvePromise(code)
    })
    child.kill('SIGTERM')
  })
}

/** Runs `node args…` to completion and returns its stdout; rejects on a non-zero exit. */
export function runNode(args, { timeoutMs = 300_000 } = {}) {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c) => (stdout += c))
  child.stderr.on('data', (c) => (stderr += c))
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.once('exit', (code) => {
      clearTimeout(timer)
      if (code === 0) resolvePromise(stdout)
      else reject(new Error(`node ${args.join(' ')} exited with ${code}:\n${stderr}`))
    })
  })
}

/** `helix bench … --json`, parsed. */
export async function helixBench(args, options) {
  return JSON.parse(await runNode([HELIX_BIN, 'bench', ...args, '--json'], options))
}

/** autocannon's own measurement (its CLI, --json), after a warm-up of the same length as helix bench's. */
export async function autocannon(url, { connections, seconds, warmupSeconds = 1 }) {
  const out = await runNode([
    AUTOCANNON_BIN,
    '--json',
    '-c',
    String(connections),
    '-d',
    String(seconds),
    '--warmup',
    '[',
    '-c',
    String(connections),
    '-d',
    String(warmupSeconds),
    ']',
    url,
  ])
  const result = JSON.parse(out.trim().split('\n').pop())
  return {
    throughput: result.requests.total / result.duration,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx,
  }
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}
