import { type ChildProcess, spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { HELIX_BIN, runHelix, tempDir } from '../helpers/cli.js'
import { CLS_MODEL_PATH } from '../helpers/onnx-models.js'

export interface HelixDaemon {
  url: string
  dir: string
  stop: () => Promise<void>
}

/**
 * A real `helix serve` (the built binary) on an ephemeral loopback port, serving the PP-OCR cls model.
 * `init` runs `helix init --yes` first (certificates for `--tls` / `--mtls` in `serveArgs`).
 */
export async function startHelixWithCls(
  options: { init?: boolean; serveArgs?: string[] } = {},
): Promise<HelixDaemon> {
  const tmp = await tempDir('helix-bench-serve-')
  if (options.init) {
    const init = await runHelix(['init', '--yes', '--dir', tmp.dir])
    if (init.exitCode !== 0) throw new Error(`helix init failed: ${init.stderr}`)
  }
  const added = await runHelix(['models', 'add', 'cls', CLS_MODEL_PATH, '--dir', tmp.dir])
  if (added.exitCode !== 0) throw new Error(`helix models add failed: ${added.stderr}`)
  const child = spawn(
    process.execPath,
    [
      HELIX_BIN,
      'serve',
      '--dir',
      tmp.dir,
      '--host',
      '127.0.0.1',
      '--port',
      '0',
      '--no-auth',
      ...(options.serveArgs ?? []),
    ],
    {
      env: { ...process.env, HELIX_DIR: undefined, HELIX_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const url = await listening(child)
  await clsReady(url, tmp.dir)
  return {
    url,
    dir: tmp.dir,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGTERM')
        await exited
      }
      await tmp.cleanup()
    },
  }
}

/** The daemon listens before its models load: wait until cls answers ready (over TLS with the helix CA). */
async function clsReady(url: string, dir: string): Promise<void> {
  const https = url.startsWith('https:')
  const dispatcher = https
    ? new Agent({
        connect: {
          ca: await readFile(join(dir, 'certs', 'ca.crt'), 'utf8'),
          cert: await readFile(join(dir, 'certs', 'client.crt'), 'utf8'),
          key: await readFile(join(dir, 'certs', 'client.key'), 'utf8'),
        },
      })
    : undefined
  try {
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline) {
      const res = await request(`${url}/v2/models/cls/ready`, dispatcher ? { dispatcher } : {}).catch(
        () => undefined,
      )
      await res?.body.dump()
      if (res?.statusCode === 200) return
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    throw new Error(`cls was not ready at ${url} within 60 s`)
  } finally {
    await dispatcher?.close()
  }
}

function listening(child: ChildProcess): Promise<string> {
  let output = ''
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`helix serve did not listen in 60 s:\n${output}`))
    }, 60_000)
    const onData = (chunk: Buffer) => {
      output += chunk
      const match = /listening on (https?:\/\/\S+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve(match[1])
      }
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`helix serve exited with ${code}:\n${output}`))
    })
  })
}
