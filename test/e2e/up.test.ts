import { chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HELIX_BIN, runHelix, tempDir } from '../helpers/cli.js'
import { hasTool } from '../helpers/tools.js'
import { freePort } from '../provision/render/nginx-run.js'

interface Up {
  child: ResultPromise
  stdout: () => string
  /** Milliseconds from spawn until the daemon listened and the summary was printed. */
  readyMs: number
}

/** Starts `helix up` as a user would and waits for its summary. */
async function startUp(dir: string, port: number): Promise<Up> {
  const started = Date.now()
  const child = execa('node', [HELIX_BIN, 'up', '--dir', dir, '--port', String(port)], {
    reject: false,
    env: { HELIX_DIR: undefined },
    extendEnv: true,
    stdin: 'ignore',
  })
  let out = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk
  })
  const deadline = Date.now() + 90_000
  while (!out.includes('Press Ctrl-C to stop.')) {
    if (Date.now() > deadline || child.exitCode !== null) {
      throw new Error(`helix up did not come up: ${out}\n${(await child).stderr}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return { child, stdout: () => out, readyMs: Date.now() - started }
}

async function stop(up: Up): Promise<number | undefined> {
  up.child.kill('SIGINT')
  const result = await up.child
  return result.exitCode
}

async function postgresProcesses(dir: string): Promise<string> {
  return String(
    (await execa('pgrep', ['-af', join(dir, 'data', 'postgres')], { reject: false })).stdout,
  ).trim()
}

describe.skipIf(!hasTool('curl'))('helix up (built binary, real daemon and embedded PostgreSQL)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let port: number
  let first: Up
  let key: string

  beforeAll(async () => {
    const t = await tempDir()
    cleanup = t.cleanup
    // mkdtemp makes 0700 directories; as root the embedded server runs as an unprivileged user who must
    // be able to reach the data directory (helix says so clearly when it cannot).
    await chmod(t.dir, 0o755)
    dir = join(t.dir, 'helix')
    port = await freePort()
    first = await startUp(dir, port)
    key =
      /Admin API key \(shown once, stored only as a hash\): (hx_[A-Za-z0-9]+)/.exec(first.stdout())?.[1] ?? ''
  }, 180_000)
  afterAll(async () => {
    if (first?.child.exitCode === null) await stop(first)
    await runHelix(['db', 'stop', '--dir', dir])
    await cleanup()
  })

  it('prints the URL, the admin key once, and a curl line that returns a real inference', async () => {
    const out = first.stdout()
    expect(out).toContain(`Helix is up at http://127.0.0.1:${port}`)
    expect(out).toContain('created the helix directory with defaults')
    expect(out).toContain("added the demo model 'cls'")
    expect(key).toMatch(/^hx_[A-Za-z0-9]{20,}$/)
    const curl = /^ {2}(curl .*)$/m.exec(out)?.[1]
    expect(curl).toContain(key)
    const result = await execa('sh', ['-c', `${curl} -w '\\n%{http_code}'`])
    const [body, status] = String(result.stdout).split('\n')
    expect(status).toBe('200')
    const response = JSON.parse(body)
    expect(response.model_name).toBe('cls')
    expect(response.outputs[0].shape).toEqual([1, 2])
    const [p0, p1] = response.outputs[0].data
    expect(p0 + p1).toBeCloseTo(1, 5)
    const anonymous = await fetch(`http://127.0.0.1:${port}/v2/models/cls/infer`, {
      method: 'POST',
      body: '{}',
    })
    expect(anonymous.status).toBe(401)
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Bearer/)
  })

  it('status and doctor report the running service truthfully', async () => {
    const status = await runHelix(['status', '--dir', dir, '--json', '--key', key], {
      env: { HELIX_PORT: String(port) },
    })
    expect(status.exitCode).toBe(0)
    const report = JSON.parse(status.stdout)
    expect(report.daemon).toMatchObject({ reachable: true, ready: true })
    expect(report.daemon.uptimeSeconds).toBeGreaterThanOrEqual(0)
    expect(report.database).toMatchObject({ mode: 'embedded', reachable: true })
    expect(report.database.migrations.pending).toEqual([])
    expect(report.models).toContainEqual(
      expect.objectContaining({ name: 'cls', state: 'READY', executionProvider: 'cpu', queueDepth: 0 }),
    )
    expect(report.certificates.map((c: { role: string }) => c.role)).toEqual(['ca', 'server', 'client'])
    expect(report.jwt.ageDays).toBe(0)
    const doctor = await runHelix(['doctor', '--dir', dir, '--json'], { env: { HELIX_PORT: String(port) } })
    const checks = Object.fromEntries(
      JSON.parse(doctor.stdout).checks.map((c: { name: string; status: string }) => [c.name, c.status]),
    )
    expect(checks).toMatchObject({
      database: 'ok',
      clock: 'ok',
      port: 'ok',
      permissions: 'ok',
      certificates: 'ok',
    })
  })

  it('Ctrl-C stops the daemon and the database it started; nothing stays behind', async () => {
    expect(await postgresProcesses(dir)).not.toBe('')
    expect(await stop(first)).toBe(0)
    expect(first.stdout()).toContain('Stopped (SIGINT). The embedded database was stopped too.')
    expect(await postgresProcesses(dir)).toBe('')
  })

  it('a second helix up reuses data and keys, and prints no new key', async () => {
    const second = await startUp(dir, port)
    try {
      const out = second.stdout()
      expect(out).not.toMatch(/hx_[A-Za-z0-9]{20,}/)
      expect(out).toContain('Using the existing admin API key')
      expect(out).not.toContain('created the helix directory')
      expect(out).not.toContain('added the demo model')
      console.info(`second helix up was serving after ${second.readyMs} ms`)
      const ready = await fetch(`http://127.0.0.1:${port}/v2/health/ready`)
      expect(ready.status).toBe(200)
    } finally {
      expect(await stop(second)).toBe(0)
    }
  })

  it('with the database down, status shows it and doctor fails with advice', async () => {
    const status = JSON.parse((await runHelix(['status', '--dir', dir, '--json'])).stdout)
    expect(status.database).toMatchObject({ running: false, reachable: false })
    expect(status.daemon.reachable).toBe(false)
    const doctor = await runHelix(['doctor', '--dir', dir, '--json'])
    expect(doctor.exitCode).toBe(1)
    const database = JSON.parse(doctor.stdout).checks.find((c: { name: string }) => c.name === 'database')
    expect(database).toMatchObject({ status: 'fail', advice: expect.stringContaining('helix db start') })
  })
})
