import { chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { renderStatus } from '../../src/cli/output/status.js'
import { checkDaemonGrpcPort, checkDatabase } from '../../src/ops/doctor.js'
import { serveDaemon } from '../../src/ops/serve.js'
import { collectStatus } from '../../src/ops/status.js'
import { type UpReady, type UpResult, up } from '../../src/ops/up.js'
import { loadConfig } from '../../src/shared/config.js'
import { HelixHome } from '../../src/shared/home.js'
import { tempDir } from '../helpers/cli.js'
import { freePort } from '../provision/render/nginx-run.js'

/** up(), status and the database check in this process (the e2e tests drive the same through the binary). */
describe('up → status → stop, in process', () => {
  let home: HelixHome
  let cleanup: () => Promise<void>
  let ready: UpReady
  let running: Promise<UpResult>

  beforeAll(async () => {
    const t = await tempDir()
    cleanup = t.cleanup
    await chmod(t.dir, 0o755)
    home = new HelixHome(join(t.dir, 'h'))
    running = up(home, { port: 0, signals: ['SIGUSR2'] }, (r) => {
      ready = r
    })
    const deadline = Date.now() + 90_000
    while (!ready) {
      if (Date.now() > deadline) throw new Error('up() did not get ready')
      await new Promise((r) => setTimeout(r, 100))
    }
  }, 120_000)
  afterAll(() => cleanup())

  it('reports what it did and how to call it', () => {
    expect(ready).toMatchObject({
      initialised: true,
      databaseStarted: true,
      adminKeyCreated: true,
      modelAdded: 'cls',
      adminKey: expect.stringMatching(/^hx_/),
    })
    expect(ready.migrationsApplied.length).toBeGreaterThan(0)
    expect(ready.curl).toContain(
      `--data @${home.path('data', 'demo-request.json')} ${ready.url}/v2/models/cls/infer`,
    )
  })

  it('status sees the daemon, its model, the database, certificates, key and GPUs', async () => {
    const config = await loadConfig(home)
    const report = await collectStatus({ home, config, url: ready.url, apiKey: ready.adminKey })
    expect(report.daemon).toMatchObject({ reachable: true, ready: true, version: expect.any(String) })
    expect(report.models).toEqual([
      expect.objectContaining({ name: 'cls', version: '1', state: 'READY', executionProvider: 'cpu' }),
    ])
    expect(report.database).toMatchObject({ mode: 'embedded', reachable: true })
    expect(report.jwt).toMatchObject({ alg: 'EdDSA', ageDays: 0, overdue: false })
    // The gRPC face from data/daemon.json, asked with a real grpc.health.v1 Check.
    expect(ready.grpc).toMatch(/^127\.0\.0\.1:\d+$/)
    expect(report.grpc).toEqual({ target: ready.grpc, source: 'record', tls: false, status: 'SERVING' })
    const text = renderStatus(report)
    expect(text).toContain(`\ngrpc       ${ready.grpc}  serving\n`)
    expect(text).toMatch(/^daemon +http:\/\/127\.0\.0\.1:\d+ {2}ready/m)
    expect(text).toMatch(/^database +embedded {2}reachable/m)
    expect(text).toMatch(/^cls +1 +READY +cpu +0/m)
    const anonymous = await collectStatus({ home, config, url: ready.url })
    expect(anonymous.daemon.error).toContain('pass an admin key')
    expect(anonymous.models).toEqual([])
  })

  it("doctor finds the gRPC port held by this daemon's gRPC face", async () => {
    expect(await checkDaemonGrpcPort(home, await loadConfig(home))).toEqual({
      name: 'grpc-port',
      status: 'ok',
      message: `${ready.grpc} is served by the running helix daemon's gRPC face (pid ${process.pid})`,
    })
  })

  it('the database check passes with the clock in step', async () => {
    const checks = await checkDatabase(home, await loadConfig(home))
    expect(checks.map((c) => [c.name, c.status])).toEqual([
      ['database', 'ok'],
      ['clock', 'ok'],
    ])
  })

  it('stops on the signal, and stops the database it started', async () => {
    process.emit('SIGUSR2', 'SIGUSR2')
    const result = await running
    expect(result.signal).toBe('SIGUSR2')
    // A gRPC port nothing listens on, so another daemon on this machine cannot answer in its place.
    const grpcPort = await freePort()
    const config = await loadConfig(home, { server: { grpc: { port: grpcPort } } })
    const report = await collectStatus({ home, config })
    expect(report.database).toMatchObject({ running: false, reachable: false })
    expect(report.daemon.reachable).toBe(false)
    // No record any more: helix.yaml says where the gRPC face would be.
    expect(report.grpc).toMatchObject({
      target: `127.0.0.1:${grpcPort}`,
      source: 'config',
      error: expect.stringMatching(/^UNAVAILABLE/),
    })
    expect(report.grpc).not.toHaveProperty('status')
    expect(renderStatus(report)).toMatch(/^daemon .* not running/m)
    expect(renderStatus(report)).toMatch(
      new RegExp(`^grpc +127\\.0\\.0\\.1:${grpcPort} {2}not running \\(UNAVAILABLE`, 'm'),
    )
    expect(renderStatus(report)).toMatch(/^database +embedded {2}DOWN/m)
  })

  it.each([
    ['TLS', { tls: true }],
    ['mTLS', { mtls: true }],
  ])('status reaches a %s daemon, REST and gRPC, through the helix CA', async (_name, tls) => {
    const port = await freePort()
    const grpcPort = await freePort()
    let url = ''
    const serving = serveDaemon(
      home,
      { port, grpcPort, ...tls, auth: false, logLevel: 'silent' },
      {
        signals: ['SIGUSR2'],
        logDestination: 2,
        onReady: (u) => {
          url = u
        },
      },
    )
    const deadline = Date.now() + 60_000
    while (url === '' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    try {
      expect(url).toBe(`https://127.0.0.1:${port}`)
      const report = await collectStatus({ home, config: await loadConfig(home), url })
      expect(report.daemon).toMatchObject({ reachable: true, ready: true })
      expect(report.grpc).toEqual({
        target: `127.0.0.1:${grpcPort}`,
        source: 'record',
        tls: true,
        status: 'SERVING',
      })
      expect(renderStatus(report)).toContain(`\ngrpc       127.0.0.1:${grpcPort} (tls)  serving\n`)
    } finally {
      process.emit('SIGUSR2', 'SIGUSR2')
      await serving
    }
  })

  it('status of an empty directory says what is missing instead of failing', async () => {
    const empty = new HelixHome(join(home.root, '..', 'empty'))
    const report = await collectStatus({
      home: empty,
      config: await loadConfig(empty),
      url: 'http://127.0.0.1:1',
    })
    expect(report.certificates).toEqual([])
    expect(report.jwt.error).toContain('helix keys generate')
    // --url names a daemon helix.yaml does not describe: its gRPC face is looked for at its port + 1.
    expect(report.grpc).toMatchObject({ target: '127.0.0.1:2', source: 'flag', tls: false })
    expect(report.grpc?.error).toMatch(/^UNAVAILABLE/)
    expect(renderStatus(report)).toMatch(/^jwt key +no current JWT signing key/m)
  })
})
