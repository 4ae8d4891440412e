import { chmod, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HELIX_BIN, runHelix, runHelixJson, tempDir } from '../helpers/cli.js'
import { freePortPair } from '../helpers/ports.js'
import { hasTool } from '../helpers/tools.js'

interface Up {
  child: ResultPromise
  stdout: () => string
  /** Milliseconds from spawn until the daemon listened and the summary was printed. */
  readyMs: number
  /** Runs on a pseudo-terminal (util-linux `script`): stdout and stderr are one TTY stream. */
  terminal: boolean
}

/** Starts `helix up` as a user would (on a terminal when asked) and waits for its summary. */
async function startUp(dir: string, port: number, terminal = false): Promise<Up> {
  const started = Date.now()
  const args = [HELIX_BIN, 'up', '--dir', dir, '--port', String(port)]
  // SHELL=/bin/sh as on a CI runner, where it is often unset: script runs the command with it.
  const options = { reject: false, env: { HELIX_DIR: undefined, SHELL: '/bin/sh' }, extendEnv: true } as const
  // `exec`: without it a shell that does not exec its last command (dash, /bin/sh when SHELL is unset)
  // stays in the terminal's foreground group, dies of the Ctrl-C itself, and script reports 130.
  const command = `exec ${['node', ...args].map((a) => `'${a}'`).join(' ')}`
  const child = terminal
    ? execa('script', ['-qfec', command, '/dev/null'], {
        ...options,
        stdin: 'pipe',
      })
    : execa('node', args, { ...options, stdin: 'ignore' })
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
  return { child, stdout: () => out, readyMs: Date.now() - started, terminal }
}

async function stop(up: Up): Promise<number | undefined> {
  // On a terminal, Ctrl-C is a byte the terminal turns into SIGINT for the foreground process.
  if (up.terminal) up.child.stdin!.write('\x03')
  else up.child.kill('SIGINT')
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
    port = await freePortPair()
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
    expect(out).toContain(`Helix is up at http://127.0.0.1:${port} (gRPC on 127.0.0.1:${port + 1})`)
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
    // helix.yaml still says port 8080: status and doctor find the daemon through data/daemon.json.
    const status = await runHelix(['status', '--dir', dir, '--json', '--key', key])
    expect(status.exitCode).toBe(0)
    const report = JSON.parse(status.stdout)
    expect(report.daemon).toMatchObject({
      url: `http://127.0.0.1:${port}`,
      source: 'record',
      pid: first.child.pid,
      reachable: true,
      ready: true,
    })
    expect(report.daemon.uptimeSeconds).toBeGreaterThanOrEqual(0)
    expect(report.database).toMatchObject({ mode: 'embedded', reachable: true })
    expect(report.database.migrations.pending).toEqual([])
    expect(report.models).toContainEqual(
      expect.objectContaining({ name: 'cls', state: 'READY', executionProvider: 'cpu', queueDepth: 0 }),
    )
    expect(report.certificates.map((c: { role: string }) => c.role)).toEqual(['ca', 'server', 'client'])
    expect(report.jwt.ageDays).toBe(0)
    const doctor = await runHelix(['doctor', '--dir', dir, '--json'])
    expect(JSON.parse(doctor.stdout).checks).toContainEqual(
      expect.objectContaining({
        name: 'port',
        status: 'ok',
        message: `127.0.0.1:${port} is served by the running helix daemon (pid ${first.child.pid})`,
      }),
    )
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

  it('an infer-only key runs helix bench against the recorded daemon; models load finds it too', async () => {
    const created = await runHelixJson<{ key: string }>([
      'apikeys',
      'create',
      '--name',
      'bench',
      '--scopes',
      'infer',
      '--dir',
      dir,
    ])
    // bench reads the model's metadata first (as KServe clients do), which infer now allows.
    const bench = await runHelix([
      'bench',
      '--dir',
      dir,
      '--model',
      'cls',
      '--key',
      created.key,
      '--shape',
      'x=1,3,48,192',
      '--concurrency',
      '1',
      '--requests',
      '10',
      '--warmup',
      '0ms',
      '--json',
    ])
    expect(bench.exitCode, bench.stderr).toBe(0)
    const result = JSON.parse(bench.stdout)
    expect(result.steps[0]).toMatchObject({ successes: 10 })
    const index = await fetch(`http://127.0.0.1:${port}/v2/repository/index`, {
      method: 'POST',
      headers: { authorization: `Bearer ${created.key}` },
    })
    expect(index.status).toBe(403)
    const load = await runHelixJson<{ url: string }>([
      'models',
      'load',
      'cls',
      '--dir',
      dir,
      '--api-key',
      key,
    ])
    expect(load.url).toBe(`http://127.0.0.1:${port}`)
  })

  it('Ctrl-C stops the daemon and the database it started; nothing stays behind', async () => {
    expect(await postgresProcesses(dir)).not.toBe('')
    expect(await stop(first)).toBe(0)
    expect(first.stdout()).toContain('Stopped (SIGINT). The embedded database was stopped too.')
    expect(await postgresProcesses(dir)).toBe('')
    await expect(stat(join(dir, 'data', 'daemon.json'))).rejects.toMatchObject({ code: 'ENOENT' })
    // stderr is not a terminal here: JSON log lines, with one line for the anonymous 401 and none for
    // the successful requests (curl, bench, status).
    const logs = String((await first.child).stderr)
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { msg: string; res?: { statusCode: number } })
    expect(logs.some((l) => l.msg === 'incoming request')).toBe(false)
    const requestLines = logs.filter((l) => l.msg === 'request completed')
    expect(requestLines.length).toBeGreaterThan(0)
    expect(requestLines.every((l) => (l.res?.statusCode ?? 0) >= 400)).toBe(true)
  })

  it('a second helix up, on a terminal, reuses data and keys, prints no new key, and short log lines', async () => {
    const second = await startUp(dir, port, hasTool('script'))
    try {
      const out = second.stdout()
      if (second.terminal) {
        // Human lines while it starts, no JSON; after the summary only warnings and errors.
        expect(out).toMatch(/^\d\d:\d\d:\d\d INFO {2}models loaded ready=true\r?$/m)
        expect(out).not.toContain('{"level"')
        const anonymous = await fetch(`http://127.0.0.1:${port}/v2/models/cls`)
        expect(anonymous.status).toBe(401)
        await new Promise((r) => setTimeout(r, 300))
        expect(second.stdout().slice(out.length)).not.toContain('request completed')
      }
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
    expect(second.stdout()).toContain('Stopped (SIGINT). The embedded database was stopped too.')
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
