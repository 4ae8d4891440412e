import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { HELIX_BIN, ROOT, runHelix, tempDir } from '../helpers/cli.js'

export const CLS_MODEL = join(
  ROOT,
  'node_modules',
  '@gutenye',
  'ocr-models',
  'assets',
  'ch_ppocr_mobile_v2.0_cls_infer.onnx',
)

export interface HelixDaemon {
  url: string
  dir: string
  stop: () => Promise<void>
}

/** A real `helix serve` (the built binary) on an ephemeral loopback port, serving the PP-OCR cls model. */
export async function startHelixWithCls(): Promise<HelixDaemon> {
  const tmp = await tempDir('helix-bench-serve-')
  const added = await runHelix(['models', 'add', 'cls', CLS_MODEL, '--dir', tmp.dir])
  if (added.exitCode !== 0) throw new Error(`helix models add failed: ${added.stderr}`)
  const child = spawn(
    process.execPath,
    [HELIX_BIN, 'serve', '--dir', tmp.dir, '--host', '127.0.0.1', '--port', '0', '--no-auth'],
    {
      env: { ...process.env, HELIX_DIR: undefined, HELIX_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const url = await listening(child)
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
