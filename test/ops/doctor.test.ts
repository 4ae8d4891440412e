import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { renderChecks } from '../../src/cli/output/doctor.js'
import {
  checkCertificates,
  checkDaemonGrpcPort,
  checkDaemonPort,
  checkDiskSpace,
  checkGrpcPort,
  checkJwtKeyAge,
  checkKeyPermissions,
  checkNodeVersion,
  checkNvidia,
  checkPort,
  checkTool,
  runDoctor,
} from '../../src/ops/doctor.js'
import { loadConfig } from '../../src/shared/config.js'
import { HelixHome } from '../../src/shared/home.js'
import { writeDaemonRecord } from '../../src/state/daemon-record.js'
import { testGrpc } from '../grpc/fixtures.js'
import { ROOT, runHelix, tempDir } from '../helpers/cli.js'
import { writeSelfSigned } from '../helpers/openssl.js'
import { freePort } from '../provision/render/nginx-run.js'
import { writeSelfSignedCerts } from '../provision/render/self-signed.js'

const DAY = 86_400_000

/** A self-signed certificate valid for `days` days from now, made by the real openssl. */
async function writeCert(path: string, days: number): Promise<void> {
  await writeSelfSigned({ keyOut: `${path}.tmpkey`, certOut: path, days, subject: '/CN=test' })
}

describe('helix doctor checks', () => {
  let home: HelixHome
  let cleanup: () => Promise<void>
  const now = new Date()
  beforeEach(async () => {
    const t = await tempDir()
    home = new HelixHome(t.dir)
    cleanup = t.cleanup
    for (const d of ['certs', 'keys', 'data']) await mkdir(home.path(d))
  })
  afterEach(() => cleanup())

  it('checks the Node.js version against engines', () => {
    expect(checkNodeVersion('20.19.0').status).toBe('ok')
    expect(checkNodeVersion('22.1.0').status).toBe('ok')
    const old = checkNodeVersion('18.20.1')
    expect(old.status).toBe('fail')
    expect(old.advice).toContain('20.19')
  })

  it('fails on private keys readable by others and names them', async () => {
    await writeFile(home.path('certs', 'ca.key'), 'k', { mode: 0o600 })
    expect((await checkKeyPermissions(home)).status).toBe('ok')
    await chmod(home.path('certs', 'ca.key'), 0o644)
    const result = await checkKeyPermissions(home)
    expect(result.status).toBe('fail')
    expect(result.message).toContain('ca.key')
    expect(result.advice).toContain('chmod 600')
  })

  it('warns on certificates close to expiry and fails on expired ones', async () => {
    const config = await loadConfig(home, {}, {})
    expect((await checkCertificates(home, config, now)).status).toBe('warn')
    await writeCert(home.path('certs', 'ca.crt'), 3650)
    expect((await checkCertificates(home, config, now)).status).toBe('ok')
    await writeCert(home.path('certs', 'server.crt'), 10)
    const soon = await checkCertificates(home, config, new Date(now.getTime() + DAY / 2))
    expect(soon).toMatchObject({ status: 'warn', message: 'certs/server.crt expires in 9 day(s)' })
    const later = new Date(now.getTime() + 11 * DAY)
    expect(await checkCertificates(home, config, later)).toMatchObject({
      status: 'fail',
      message: 'certs/server.crt has expired',
    })
    await writeFile(home.path('certs', 'server.crt'), 'garbage')
    expect((await checkCertificates(home, config, now)).status).toBe('fail')
  })

  it('warns when the current JWT key is overdue for rotation', async () => {
    const config = await loadConfig(home, {}, {})
    expect((await checkJwtKeyAge(home, config, now)).status).toBe('warn')
    const kid = 'A'.repeat(43)
    const meta = (created: string, status = 'current') =>
      JSON.stringify({
        version: 1,
        keys: { [kid]: { alg: 'EdDSA', status, created_at: created, retire_at: null } },
      })
    await writeFile(home.path('keys', 'keys.json'), meta(new Date(now.getTime() - 12.5 * DAY).toISOString()))
    expect(await checkJwtKeyAge(home, config, now)).toMatchObject({
      status: 'ok',
      message: 'current JWT key is 12 day(s) old',
    })
    await writeFile(home.path('keys', 'keys.json'), meta(new Date(now.getTime() - 100 * DAY).toISOString()))
    expect((await checkJwtKeyAge(home, config, now)).status).toBe('warn')
    await writeFile(home.path('keys', 'keys.json'), meta(now.toISOString(), 'retired'))
    expect((await checkJwtKeyAge(home, config, now)).status).toBe('fail')
    await writeFile(home.path('keys', 'keys.json'), '{')
    expect((await checkJwtKeyAge(home, config, now)).status).toBe('fail')
  })

  it('tells a free port from one taken by another program', async () => {
    const sockets = new Set<import('node:net').Socket>()
    const server: Server = createServer((s) => {
      sockets.add(s)
      s.end('not http')
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as { port: number }).port
    try {
      const taken = await checkPort('127.0.0.1', port)
      expect(taken.status).toBe('fail')
      expect(taken.advice).toContain(`:${port}`)
    } finally {
      for (const s of sockets) s.destroy()
      await new Promise((r) => server.close(r))
    }
    expect((await checkPort('127.0.0.1', port)).status).toBe('ok')
  })

  it("checks the running daemon's recorded port, and the configured one when the record is stale", async () => {
    const server: Server = createServer()
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as { port: number }).port
    const config = await loadConfig(home, {}, {})
    const record = {
      pid: process.pid,
      url: `http://127.0.0.1:${port}`,
      host: '127.0.0.1',
      port,
      tls: false,
      mtls: false,
      started_at: now.toISOString(),
      version: '0.1.0',
    }
    try {
      await writeDaemonRecord(home, record)
      expect(await checkDaemonPort(home, config)).toEqual({
        name: 'port',
        status: 'ok',
        message: `127.0.0.1:${port} is served by the running helix daemon (pid ${process.pid})`,
      })
    } finally {
      await new Promise((r) => server.close(r))
    }
    // The pid lives but its port is free again: not our daemon any more; the configured port is checked.
    const configured = await loadConfig(home, { server: { port } }, {})
    expect(await checkDaemonPort(home, configured)).toMatchObject({
      status: 'ok',
      message: `127.0.0.1:${port} is free for the daemon`,
    })
  })

  it('checks the gRPC port helix.yaml gives the daemon: off, picked at start, shared with REST, free', async () => {
    const config = (server: Record<string, unknown>) => loadConfig(home, { server }, {})
    expect(await checkGrpcPort(home, await config({ grpc: { enabled: false } }))).toEqual({
      name: 'grpc-port',
      status: 'ok',
      message: 'gRPC is off (server.grpc.enabled: false)',
    })
    expect((await checkGrpcPort(home, await config({ port: 0 }))).message).toBe(
      'the gRPC port is picked when the daemon starts (port 0)',
    )
    const shared = await checkGrpcPort(home, await config({ port: 9000, grpc: { port: 9000 } }))
    expect(shared).toMatchObject({ status: 'fail', message: 'REST and gRPC both ask for port 9000' })
    expect(shared.advice).toContain('--grpc-port')
    const last = await checkGrpcPort(home, await config({ port: 65535 }))
    expect(last).toMatchObject({ status: 'fail', message: expect.stringContaining('no port + 1 for gRPC') })
    // Unset, the gRPC port is the REST port + 1.
    const rest = await freePort()
    const free = await checkGrpcPort(home, await config({ port: rest - 1 }))
    expect(free).toEqual({
      name: 'grpc-port',
      status: 'ok',
      message: `127.0.0.1:${rest} is free for the daemon's gRPC face`,
    })
  })

  it("tells a port held by a helix daemon's gRPC face from one held by another program", async () => {
    const daemon = await testGrpc()
    try {
      const held = await checkGrpcPort(
        home,
        await loadConfig(home, { server: { grpc: { port: daemon.server.port } } }, {}),
      )
      expect(held).toEqual({
        name: 'grpc-port',
        status: 'ok',
        message: `127.0.0.1:${daemon.server.port} is served by a running helix daemon's gRPC face`,
      })
    } finally {
      await daemon.close()
    }
    const sockets = new Set<import('node:net').Socket>()
    const server: Server = createServer((s) => {
      sockets.add(s)
      s.end('not grpc')
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const port = (server.address() as { port: number }).port
    try {
      const taken = await checkGrpcPort(home, await loadConfig(home, { server: { grpc: { port } } }, {}))
      expect(taken).toMatchObject({
        status: 'fail',
        message: `127.0.0.1:${port} is in use by another program`,
      })
      expect(taken.advice).toContain(`grep :${port}`)
    } finally {
      for (const s of sockets) s.destroy()
      await new Promise((r) => server.close(r))
    }
  }, 60_000)

  it("dials an mTLS daemon's gRPC face with the helix CA and client certificate", async () => {
    await writeSelfSignedCerts(home.certsDir)
    const read = (name: string) => readFile(home.path('certs', name))
    const daemon = await testGrpc({
      tls: {
        cert: await read('server.crt'),
        key: await read('server.key'),
        ca: await read('ca.crt'),
        mtls: true,
      },
    })
    try {
      const settings = (mtls: boolean) => ({ server: { mtls, grpc: { port: daemon.server.port } } })
      expect(await checkGrpcPort(home, await loadConfig(home, settings(true), {}))).toMatchObject({
        status: 'ok',
        message: expect.stringContaining("served by a running helix daemon's gRPC face"),
      })
      // Dialled in plaintext, the TLS face does not answer: helix.yaml does not describe this daemon.
      expect((await checkGrpcPort(home, await loadConfig(home, settings(false), {}))).status).toBe('fail')
    } finally {
      await daemon.close()
    }
  }, 60_000)

  it("checks the running daemon's recorded gRPC port before the configured one", async () => {
    const rest: Server = createServer()
    await new Promise<void>((r) => rest.listen(0, '127.0.0.1', r))
    const port = (rest.address() as { port: number }).port
    const grpc: Server = createServer()
    await new Promise<void>((r) => grpc.listen(0, '127.0.0.1', r))
    const grpcPort = (grpc.address() as { port: number }).port
    const record = {
      pid: process.pid,
      url: `http://127.0.0.1:${port}`,
      host: '127.0.0.1',
      port,
      tls: false,
      mtls: false,
      started_at: now.toISOString(),
      version: '0.1.0',
    }
    const config = await loadConfig(home, { server: { grpc: { enabled: false } } }, {})
    try {
      await writeDaemonRecord(home, {
        ...record,
        grpc: { target: `127.0.0.1:${grpcPort}`, port: grpcPort, tls: false },
      })
      expect(await checkDaemonGrpcPort(home, config)).toEqual({
        name: 'grpc-port',
        status: 'ok',
        message: `127.0.0.1:${grpcPort} is served by the running helix daemon's gRPC face (pid ${process.pid})`,
      })
      await writeDaemonRecord(home, record)
      expect((await checkDaemonGrpcPort(home, config)).message).toBe(
        `the running helix daemon (pid ${process.pid}) serves no gRPC (--no-grpc)`,
      )
    } finally {
      await new Promise((r) => rest.close(r))
      await new Promise((r) => grpc.close(r))
    }
    // The REST port is free again: the record is stale, and helix.yaml is what counts.
    expect((await checkDaemonGrpcPort(home, config)).message).toBe('gRPC is off (server.grpc.enabled: false)')
  })

  it('reports tools and disk space', async () => {
    expect((await checkTool('sh', 'shell')).status).toBe('ok')
    const missing = await checkTool('helix-no-such-tool', 'testing')
    expect(missing.status).toBe('warn')
    expect(missing.advice).toContain('apt-get install helix-no-such-tool')
    const disk = await checkDiskSpace(new HelixHome(home.path('not', 'yet')))
    expect(disk.message).toMatch(/GiB free at /)
  })

  it('sums up: any failure makes the report fail, warnings do not', async () => {
    const config = await loadConfig(home, { server: { port: 0 } }, {})
    const passing = await runDoctor({ home, config, now, database: false })
    expect(passing.ok).toBe(true)
    expect(passing.checks.find((c) => c.name === 'grpc-port')).toMatchObject({ status: 'ok' })
    const failing = await runDoctor({
      home,
      config,
      now,
      database: false,
      extraChecks: [async () => ({ name: 'db', status: 'fail', message: 'down', advice: 'start it' })],
    })
    expect(failing.ok).toBe(false)
    const text = renderChecks(failing.checks)
    expect(text).toMatch(/FAIL {2}db +down/)
    expect(text).toContain('→ start it')
    expect(text).toMatch(/1 check\(s\) failed/)
  })
})

describe('helix doctor (built binary)', () => {
  it('passes the key, certificate and permission checks on a fresh helix init', async () => {
    const { dir, cleanup } = await tempDir()
    try {
      await runHelix(['init', '--yes', '--dir', dir])
      const result = await runHelix(['doctor', '--dir', dir, '--json'], { env: { HELIX_PORT: '0' } })
      const report = JSON.parse(result.stdout) as {
        checks: { name: string; status: string; message: string }[]
      }
      const byName = Object.fromEntries(report.checks.map((c) => [c.name, c]))
      expect(byName.permissions.status).toBe('ok')
      expect(byName.permissions.message).toMatch(/^[5-9] private key file\(s\) are 0600$/)
      expect(byName.certificates.status).toBe('ok')
      expect(byName['jwt-keys']).toMatchObject({ status: 'ok', message: 'current JWT key is 0 day(s) old' })
      // HELIX_PORT=0: the gRPC port, the REST port + 1 by default, is picked at start as well.
      expect(byName['grpc-port']).toEqual({
        name: 'grpc-port',
        status: 'ok',
        message: 'the gRPC port is picked when the daemon starts (port 0)',
      })
    } finally {
      await cleanup()
    }
  })

  it('prints one JSON document and exits 1 when a check fails', async () => {
    const { dir, cleanup } = await tempDir()
    try {
      await mkdir(join(dir, 'certs'), { recursive: true })
      await writeFile(join(dir, 'certs', 'server.key'), 'k', { mode: 0o644 })
      const result = await runHelix(['doctor', '--dir', dir, '--json'])
      expect(result.exitCode).toBe(1)
      const report = JSON.parse(result.stdout)
      expect(report.ok).toBe(false)
      expect(report.checks.find((c: { name: string }) => c.name === 'permissions').status).toBe('fail')
      await chmod(join(dir, 'certs', 'server.key'), 0o600)
      const human = await runHelix(['doctor', '--dir', dir], { env: { HELIX_PORT: '0' } })
      expect(human.stdout).toMatch(/^ok {4}permissions/m)
      // Nothing started the database in this directory: that is the one failure left, with advice.
      expect(human.stdout).toMatch(/^FAIL {2}database +the embedded PostgreSQL is not running$/m)
      expect(human.stdout).toContain('helix db start')
      expect(human.stdout).toMatch(/^1 check\(s\) failed/m)
      expect(human.exitCode).toBe(1)
    } finally {
      await cleanup()
    }
  })
})

describe('helix doctor GPU check (fake nvidia-smi printing recorded H100 output)', () => {
  let bin: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    const t = await tempDir()
    bin = t.dir
    cleanup = t.cleanup
    await copyFile(join(ROOT, 'test/fixtures/nvidia-smi/fake-nvidia-smi'), join(bin, 'nvidia-smi'))
    await chmod(join(bin, 'nvidia-smi'), 0o755)
  })
  afterAll(() => cleanup())
  const env = (output: string, exit = '0') => ({
    ...process.env,
    PATH: `${bin}:${process.env.PATH}`,
    FAKE_NVIDIA_SMI_OUTPUT: join(ROOT, 'test/fixtures/nvidia-smi', output),
    FAKE_NVIDIA_SMI_EXIT: exit,
  })

  it('names the GPUs it finds', async () => {
    const result = await checkNvidia(env('h100-x1.csv'))
    expect(result.status).toBe('ok')
    expect(result.message).toMatch(/^1 GPU\(s\): NVIDIA H100 80GB HBM3 \(\d+ MiB free\)$/)
    expect((await checkNvidia(env('h100-x8.csv'))).message).toMatch(/^8 GPU\(s\)/)
  })

  it('fails with advice when the driver errors', async () => {
    const result = await checkNvidia(env('driver-error.txt', '9'))
    expect(result.status).toBe('fail')
    expect(result.message).toContain("couldn't communicate with the NVIDIA driver")
    expect(result.advice).toContain('driver')
  })

  it('only warns when there is no driver at all', async () => {
    const result = await checkNvidia({ ...process.env, PATH: '/nonexistent' })
    expect(result.status).toBe('warn')
  })
})
