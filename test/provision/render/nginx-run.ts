import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, open } from 'node:fs/promises'
import { createConnection, createServer } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { execa, type ResultPromise } from 'execa'

/** A port that was free a moment ago (the kernel picks it). */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Whether the nginx on PATH is at least major.minor.patch (`nginx -v` prints to stderr). */
export async function nginxAtLeast(major: number, minor: number, patch: number): Promise<boolean> {
  const { stderr } = await execa('nginx', ['-v'], { reject: false })
  const [a, b, c] = (/nginx\/(\d+)\.(\d+)\.(\d+)/.exec(String(stderr)) ?? []).slice(1).map(Number)
  return a !== major ? a > major : b !== minor ? b > minor : c >= patch
}

/** `nginx -t` on a config, with pid/log/temp paths resolved inside `prefix`. */
export async function nginxTest(
  prefix: string,
  conf: string,
): Promise<{ exitCode: number | null; stderr: string }> {
  await mkdir(prefix, { recursive: true, mode: 0o755 })
  // stdout is a plain file: a config logging to /dev/stdout (the container variant) must be able to
  // open it, which fails on the socket a child gets by default.
  const stdout = await open(join(prefix, 'stdout.log'), 'w')
  try {
    const child = spawn('nginx', ['-t', '-p', `${prefix}/`, '-c', conf, '-e', 'stderr'], {
      stdio: ['ignore', stdout.fd, 'pipe'],
    })
    let stderr = ''
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk
    })
    const [exitCode] = (await once(child, 'close')) as [number | null]
    return { exitCode, stderr }
  } finally {
    await stdout.close()
  }
}

/** Starts real nginx in the foreground on a config and waits until it accepts connections. */
export async function startNginx(
  prefix: string,
  conf: string,
  port: number,
): Promise<{ stop: () => Promise<void> }> {
  await mkdir(prefix, { recursive: true, mode: 0o755 })
  const child: ResultPromise = execa(
    'nginx',
    ['-p', `${prefix}/`, '-c', conf, '-e', 'stderr', '-g', 'daemon off;'],
    {
      reject: false,
    },
  )
  const stop = async () => {
    child.kill('SIGQUIT')
    await child
  }
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createConnection(port)
      socket.once('connect', () => resolve(true)).once('error', () => resolve(false))
      setTimeout(() => socket.destroy(), 200)
    })
    if (ok) return { stop }
    await sleep(50)
  }
  const result = await child
  throw new Error(`nginx did not start: ${result.stderr}`)
}
