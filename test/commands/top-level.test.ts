import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import Doctor from '../../src/commands/doctor.js'
import Init from '../../src/commands/init.js'
import Serve from '../../src/commands/serve.js'
import Status from '../../src/commands/status.js'
import Up from '../../src/commands/up.js'
import { tempDir } from '../helpers/cli.js'
import { runInProcess } from '../helpers/in-process.js'
import { freePortPair } from '../helpers/ports.js'

/**
 * The top-level commands run in this process, so coverage sees src/commands; test/e2e runs the same
 * commands through the built binary as a user would.
 */
async function waitReady(port: number): Promise<void> {
  const deadline = Date.now() + 90_000
  for (;;) {
    const ready = await fetch(`http://127.0.0.1:${port}/v2/health/ready`).catch(() => undefined)
    if (ready?.status === 200) return
    if (Date.now() > deadline) throw new Error(`nothing became ready on port ${port}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

describe('init, doctor, status, serve and up commands (in process)', () => {
  let root: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir: root, cleanup } = await tempDir())
    await chmod(root, 0o755)
  })
  afterAll(() => cleanup())

  it('init prints what it created, then what it kept, and the client .p12 password once', async () => {
    const dir = join(root, 'a')
    const first = await runInProcess<{ created: string[]; clientP12Password?: string }>(Init, [
      '--yes',
      '--dir',
      dir,
    ])
    expect(first.exitCode).toBe(0)
    expect(first.stdout).toContain(`Helix directory ready at ${dir}`)
    expect(first.stdout).toMatch(/^ {2}created {2}certs\/ca\.key$/m)
    expect(first.result?.clientP12Password).toBeTruthy()
    expect(first.stdout).toContain(first.result?.clientP12Password)
    const second = await runInProcess<{ created: string[]; clientP12Password?: string }>(Init, [
      '--yes',
      '--dir',
      dir,
    ])
    expect(second.result?.created).toEqual([])
    expect(second.result?.clientP12Password).toBeUndefined()
    expect(second.stdout).toContain('Nothing to do')
    const bad = await runInProcess(Init, [
      '--yes',
      '--dir',
      join(root, 'b'),
      '--domain',
      'bad domain!',
      '--json',
    ])
    expect(bad.exitCode).toBe(2)
    expect(JSON.parse(bad.stderr).error.code).toBe('INVALID_NAME')
  })

  it('doctor renders every check and sets exit code 1 when one fails', async () => {
    const dir = join(root, 'a')
    await writeFile(join(dir, 'certs', 'extra.key'), 'x', { mode: 0o644 })
    const saved = process.exitCode
    try {
      const result = await runInProcess<{ ok: boolean }>(Doctor, ['--dir', dir], { HELIX_PORT: '0' })
      expect(result.result?.ok).toBe(false)
      expect(result.stdout).toMatch(/^FAIL {2}permissions/m)
      expect(result.stdout).toMatch(/^FAIL {2}database/m)
      expect(result.stdout).toMatch(
        /^ok {4}grpc-port +the gRPC port is picked when the daemon starts \(port 0\)$/m,
      )
      expect(process.exitCode).toBe(1)
    } finally {
      process.exitCode = saved
    }
  })

  it('status reports a stopped service', async () => {
    const result = await runInProcess<{ daemon: { reachable: boolean }; grpc?: Record<string, unknown> }>(
      Status,
      ['--dir', join(root, 'a')],
      { HELIX_PORT: '1' },
    )
    expect(result.result?.daemon.reachable).toBe(false)
    expect(result.stdout).toMatch(/^daemon .* not running/m)
    // No daemon recorded: helix.yaml's gRPC port (the REST port + 1) is asked, and nothing answers.
    expect(result.result?.grpc).toMatchObject({ target: '127.0.0.1:2', source: 'config', tls: false })
    expect(result.stdout).toMatch(/^grpc +127\.0\.0\.1:2 {2}not running \(UNAVAILABLE: connect ECONNREFUSED/m)
  })

  it('serve refuses to start without its database, and says how to fix it', async () => {
    const result = await runInProcess(Serve, ['--dir', join(root, 'a'), '--port', '0', '--json'])
    expect(result.exitCode).toBe(1)
    expect(JSON.parse(result.stderr.trim().split('\n').pop() ?? '{}').error.code).toBe('DB_NOT_STARTED')
  })

  it('serve --no-auth and up run until a signal, then print how they stopped', async () => {
    const dir = join(root, 'a')
    const servePort = await freePortPair()
    const serving = runInProcess<{ signal: string }>(Serve, [
      '--dir',
      dir,
      '--port',
      String(servePort),
      '--no-auth',
      '--log-level',
      'silent',
    ])
    await waitReady(servePort)
    process.emit('SIGTERM', 'SIGTERM')
    const served = await serving
    expect(served.result?.signal).toBe('SIGTERM')
    expect(served.stdout).toMatch(/helix serve listening on http:\/\/127\.0\.0\.1:\d+/)
    expect(served.stdout).toContain('helix serve stopped (SIGTERM)')

    const port = await freePortPair()
    const upping = runInProcess<{ adminKeyCreated: boolean; signal: string }>(Up, [
      '--dir',
      dir,
      '--port',
      String(port),
    ])
    // The database, migrations and the demo model take a few seconds.
    await waitReady(port)
    process.emit('SIGINT', 'SIGINT')
    const upped = await upping
    expect(upped.result?.adminKeyCreated).toBe(true)
    expect(upped.stdout).toMatch(/Admin API key \(shown once, stored only as a hash\): hx_/)
    expect(upped.stdout).toContain('Stopped (SIGINT). The embedded database was stopped too.')
  }, 120_000)
})
