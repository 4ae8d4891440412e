import { spawn } from 'node:child_process'
import { closeSync, existsSync, openSync } from 'node:fs'
import { copyFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HelixHome } from '../../src/shared/home.js'
import { readDaemonRecord } from '../../src/state/daemon-record.js'
import { HELIX_BIN, tempDir } from '../helpers/cli.js'
import { CLS_MODEL_PATH } from '../helpers/onnx-models.js'

/**
 * Issue 17's disk-full fault for the daemon's own log: `helix serve` with stdout on /dev/full, where
 * every write fails with ENOSPC (a full disk, as the kernel reports it). The daemon must keep serving,
 * say once on stderr why its log is silent, count the failures in /metrics, and stop on SIGTERM.
 */
const FULL = '/dev/full'

let dir: string
let cleanup: () => Promise<void>
beforeAll(async () => {
  ;({ dir, cleanup } = await tempDir('helix-log-full-'))
  await mkdir(join(dir, 'models', 'cls', '1'), { recursive: true })
  await copyFile(CLS_MODEL_PATH, join(dir, 'models', 'cls', '1', 'model.onnx'))
})
afterAll(async () => cleanup())

describe.skipIf(!existsSync(FULL) && !process.env.CI)('helix serve with its log on a full disk', () => {
  it('keeps serving, says why once on stderr, counts the failed writes, and stops on SIGTERM', async () => {
    // The descriptor itself, so the daemon's writes hit /dev/full (a file option would be copied by a pipe).
    const out = openSync(FULL, 'w')
    const child = spawn(
      process.execPath,
      [HELIX_BIN, 'serve', '--dir', dir, '--no-auth', '--port', '0', '--no-grpc', '--log-format', 'json'],
      { env: { ...process.env, HELIX_DIR: '' }, stdio: ['ignore', out, 'pipe'] },
    )
    closeSync(out)
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk
    })
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
    try {
      // stdout says nothing: the address comes from the daemon's record.
      const home = new HelixHome(dir)
      let url = ''
      for (let i = 0; i < 600 && !url; i++) {
        if (child.exitCode !== null) throw new Error(`helix serve exited ${child.exitCode}:\n${stderr}`)
        url = (await readDaemonRecord(home))?.url ?? ''
        if (!url) await new Promise((r) => setTimeout(r, 100))
      }
      expect(url).not.toBe('')
      let ready = 0
      for (let i = 0; i < 300 && ready !== 200; i++) {
        ready = (await fetch(`${url}/v2/health/ready`).catch(() => ({ status: 0 }))).status
        if (ready !== 200) await new Promise((r) => setTimeout(r, 100))
      }
      expect(ready).toBe(200)
      // Failed requests are what the daemon logs by default: each one is a log line that cannot be written.
      for (let i = 0; i < 5; i++) {
        const res = await fetch(`${url}/v2/models/nope/infer`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] }),
        })
        expect(res.status).toBe(404)
      }
      const served = await fetch(`${url}/v2/models/cls`)
      expect(served.status).toBe(200)
      const metrics = await (await fetch(`${url}/metrics`)).text()
      const errors = Number(/^helix_log_write_errors_total (\d+)/m.exec(metrics)?.[1])
      expect(errors).toBeGreaterThan(0)
      expect(metrics).toMatch(/^helix_log_lines_dropped_total 0$/m)
      child.kill('SIGTERM')
      expect(await exited).toBe(0)
      // Said once, however many lines failed.
      expect(stderr.match(/writing the log \(fd 1\) failed: ENOSPC/g)).toHaveLength(1)
      expect(stderr).toContain('The daemon keeps serving')
      expect(stderr).not.toMatch(/Error: ENOSPC|at writeSync/)
    } finally {
      child.kill('SIGKILL')
    }
  }, 90_000)
})
