import { readFile, stat, writeFile } from 'node:fs/promises'
import { request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { connect } from 'node:tls'
import { Pool, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createModelService } from '../../../src/core/infer/model-service.js'
import type { RequestLogPolicy } from '../../../src/http/plugins/request-log.js'
import { loadRuntimeConfig } from '../../../src/http/serve-config.js'
import { createLogger, type Daemon, serve, startDaemon } from '../../../src/http/server.js'
import { HelixHome } from '../../../src/shared/home.js'
import { daemonRecordFile, readDaemonRecord } from '../../../src/state/daemon-record.js'
import { tempDir } from '../../helpers/cli.js'
import { addModel, addToRepository, matmulChainModel } from '../../helpers/onnx-models.js'
import { hasTool } from '../../helpers/tools.js'
import { writeTestCerts } from './openssl-certs.js'

let dir: string
let cleanup: () => Promise<void>
const SLOW_ROWS = 512
const slowInput = new Float32Array(SLOW_ROWS * 256).fill(1)
const slowBody = JSON.stringify({
  inputs: [{ name: 'x', datatype: 'FP32', shape: [SLOW_ROWS, 256], data: Array.from(slowInput) }],
})
const addBody = JSON.stringify({
  inputs: [
    { name: 'a', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] },
    { name: 'b', datatype: 'FP32', shape: [1, 4], data: [1, 1, 1, 1] },
  ],
})

beforeAll(async () => {
  ;({ dir, cleanup } = await tempDir('helix-server-'))
  await addToRepository(join(dir, 'models'), 'add', addModel())
  await addToRepository(join(dir, 'models'), 'slow', matmulChainModel(256, 64), {
    config: { max_batch_size: 0 },
  })
  // A request alone waits the whole queue delay for company: a request that stays in flight without
  // blocking the event loop (onnxruntime-node runs on the main thread).
  await addToRepository(join(dir, 'models'), 'waiting', addModel(), {
    config: { max_batch_size: 8, max_queue_delay_ms: 5000 },
  })
})
afterAll(async () => cleanup())

/** Captures the daemon's JSON log lines. */
function logSink() {
  const lines: Record<string, unknown>[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line))
      done()
    },
  })
  return { lines, stream }
}

async function daemonFor(flags = {}, env: NodeJS.ProcessEnv = {}, requestLog?: RequestLogPolicy) {
  const loaded = await loadRuntimeConfig(new HelixHome(dir), { port: 0, ...flags }, env)
  const config = requestLog ? { ...loaded, requestLog } : loaded
  const service = await createModelService({ repositoryDir: config.modelsDir, defaultDevice: 'cpu' })
  const logs = logSink()
  const daemon = await startDaemon(config, service, createLogger(config, logs.stream))
  return { daemon, service, logs }
}

/** Resolves when the daemon has received the next request (its headers), before it answers. */
function nextRequest(daemon: Daemon): Promise<void> {
  return new Promise((resolve) => daemon.app.server.once('request', () => resolve()))
}

describe('the daemon over real HTTP', () => {
  it('serves inference and logs request ids without bodies or credentials', async () => {
    const { daemon, logs } = await daemonFor({}, {}, { mode: 'all', sampleRate: 0 })
    try {
      expect(daemon.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      const res = await request(`${daemon.url}/v2/models/add/infer`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: 'Bearer hx_secret_value',
          'x-request-id': 'trace-1',
        },
        body: addBody,
      })
      expect(res.statusCode).toBe(200)
      expect(res.headers['x-request-id']).toBe('trace-1')
      expect(((await res.body.json()) as { outputs: { data: number[] }[] }).outputs[0].data).toEqual([
        2, 3, 4, 5,
      ])
      const text = JSON.stringify(logs.lines)
      await waitFor(() => logs.lines.some((l) => l.reqId === 'trace-1'))
      // One line per request, after the answer: Fastify's own pair of lines is off.
      expect(logs.lines.filter((l) => l.reqId === 'trace-1')).toEqual([
        expect.objectContaining({
          msg: 'request completed',
          req: expect.objectContaining({ method: 'POST', url: '/v2/models/add/infer' }),
          res: { statusCode: 200 },
        }),
      ])
      expect(text).not.toContain('hx_secret_value')
      expect(text).not.toContain('"inputs"')
    } finally {
      await daemon.shutdown()
    }
  })

  it('shutdown lets an in-flight request finish, then refuses connections and closes the models', async () => {
    const { daemon, service, logs } = await daemonFor()
    const url = daemon.url
    const arrived = nextRequest(daemon)
    const inflight = request(`${url}/v2/models/slow/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: slowBody,
    })
    await arrived
    const stopping = daemon.shutdown()
    expect(daemon.shutdown()).toBe(stopping)
    const res = await inflight
    expect(res.statusCode).toBe(200)
    const body = (await res.body.json()) as { outputs: { shape: number[] }[] }
    expect(body.outputs[0].shape).toEqual([SLOW_ROWS, 256])
    await stopping
    expect(service.isReady()).toBe(false)
    await expect(request(`${url}/v2/health/live`)).rejects.toThrow()
    expect(logs.lines.map((l) => l.msg)).toContain('stopped')
  })

  it('a bounded drain closes connections that outlast it', async () => {
    const { daemon, logs } = await daemonFor({}, { HELIX_DRAIN_TIMEOUT_MS: '50' })
    const started = Date.now()
    const arrived = nextRequest(daemon)
    // Settled from the start: the request fails while shutdown() is awaited, before any expect runs.
    const inflight = request(`${daemon.url}/v2/models/waiting/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: addBody,
    }).then(
      () => undefined,
      (err: unknown) => err,
    )
    await arrived
    await daemon.shutdown()
    expect(await inflight).toMatchObject({ code: 'UND_ERR_SOCKET' })
    expect(Date.now() - started).toBeLessThan(4000)
    expect(logs.lines.map((l) => l.msg)).toContain('drain timeout reached: closing the remaining connections')
  })

  it('behind a proxy, a drain keeps idle keep-alive connections for the grace and serves what comes on them', async () => {
    const loaded = await loadRuntimeConfig(new HelixHome(dir), { port: 0 }, {})
    const config = { ...loaded, drainIdleGraceMs: 1500 }
    const service = await createModelService({ repositoryDir: config.modelsDir, defaultDevice: 'cpu' })
    const daemon = await startDaemon(config, service, createLogger(config, logSink().stream))
    // One pooled connection, as a proxy keeps to its upstream: used once, then idle.
    const pool = new Pool(daemon.url, { connections: 1, pipelining: 1 })
    try {
      const infer = () =>
        pool.request({
          path: '/v2/models/add/infer',
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: addBody,
        })
      const first = await infer()
      expect(first.statusCode).toBe(200)
      await first.body.dump()
      const started = Date.now()
      const stopping = daemon.shutdown()
      await new Promise((r) => setTimeout(r, 300))
      // The listener is closed, so this can only travel on the idle connection the drain kept: it is
      // served, and told that the connection closes after it.
      const late = await infer()
      expect(late.statusCode).toBe(200)
      expect(late.headers.connection).toBe('close')
      expect(((await late.body.json()) as { outputs: { data: number[] }[] }).outputs[0].data).toEqual([
        2, 3, 4, 5,
      ])
      await stopping
      // Its last connection closed after that answer: the drain did not wait out the whole grace.
      expect(Date.now() - started).toBeLessThan(1500)
    } finally {
      await pool.close()
    }
  })

  it('a client that disconnects has its queued work cancelled', async () => {
    const { daemon } = await daemonFor()
    try {
      const controller = new AbortController()
      const arrived = nextRequest(daemon)
      const queued = request(`${daemon.url}/v2/models/waiting/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: addBody,
        signal: controller.signal,
      })
      await arrived
      await new Promise((r) => setTimeout(r, 100))
      controller.abort()
      await expect(queued).rejects.toThrow()
      await waitFor(async () => {
        const metrics = await (await request(`${daemon.url}/metrics`)).body.text()
        return /helix_inference_requests_total\{model="waiting",version="",status="CANCELLED",protocol="rest"\} 1/.test(
          metrics,
        )
      }, 3000)
    } finally {
      const started = Date.now()
      await daemon.shutdown()
      // Nothing in flight: the idle keep-alive connections close at once instead of holding shutdown up.
      expect(Date.now() - started).toBeLessThan(1500)
    }
  })
})

describe('serve()', () => {
  it('serves on without a daemon record when data/ cannot hold one', async () => {
    const t = await tempDir('helix-no-record-')
    try {
      await addToRepository(join(t.dir, 'models'), 'add', addModel())
      await writeFile(join(t.dir, 'data'), 'a file where the data directory belongs')
      let url = ''
      const running = serve(
        new HelixHome(t.dir),
        { port: 0, logLevel: 'silent', auth: false },
        {
          onListening: (u) => {
            url = u
          },
          signals: ['SIGUSR2'],
          logDestination: 2,
        },
      )
      await waitFor(() => url !== '')
      const live = await request(`${url}/v2/health/live`)
      expect(live.statusCode).toBe(200)
      await live.body.dump()
      expect(await readDaemonRecord(new HelixHome(t.dir))).toBeUndefined()
      process.emit('SIGUSR2', 'SIGUSR2')
      expect((await running).signal).toBe('SIGUSR2')
    } finally {
      await t.cleanup()
    }
  })

  it('listens, loads the repository, and stops on a signal', async () => {
    const logLevel = 'silent'
    let url = ''
    const running = serve(
      new HelixHome(dir),
      // This test is about listening and signals; the auth-on path (database, keys) has its own e2e tests.
      { port: 0, logLevel, auth: false },
      {
        onListening: (u) => {
          url = u
        },
        signals: ['SIGUSR2'],
        logDestination: 2,
      },
    )
    await waitFor(async () => {
      if (url === '') return false
      const res = await request(`${url}/v2/health/ready`)
      await res.body.dump()
      return res.statusCode === 200
    })
    // While it listens, the helix directory records where (the real port, not the 0 asked for).
    const home = new HelixHome(dir)
    const record = await readDaemonRecord(home)
    expect(record).toMatchObject({
      pid: process.pid,
      url,
      host: '127.0.0.1',
      port: Number(new URL(url).port),
      tls: false,
      mtls: false,
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
    })
    expect((await stat(daemonRecordFile(home))).mode & 0o777).toBe(0o600)
    process.emit('SIGUSR2', 'SIGUSR2')
    expect(await running).toEqual({ url, signal: 'SIGUSR2' })
    // A clean stop removes it.
    await expect(stat(daemonRecordFile(home))).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('reads models.load and models.memory_budget from helix.yaml: lazy models load on their first request', async () => {
    const { dir: home, cleanup: done } = await tempDir('helix-server-lazy-')
    try {
      await addToRepository(join(home, 'models'), 'add', addModel())
      await writeFile(
        join(home, 'helix.yaml'),
        'models:\n  device: cpu\n  load: lazy\n  memory_budget: 64m\n  worker_pool_size: 1\n  lazy_load_timeout_ms: 20000\n',
      )
      let url = ''
      const running = serve(
        new HelixHome(home),
        { port: 0, logLevel: 'silent', auth: false },
        { onListening: (u) => (url = u), signals: ['SIGUSR2'], logDestination: 2 },
      )
      await waitFor(async () => {
        if (url === '') return false
        const res = await request(`${url}/v2/health/ready`)
        await res.body.dump()
        return res.statusCode === 200
      })
      const index = await request(`${url}/v2/repository/index`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      })
      expect(((await index.body.json()) as { state: string; reason: string }[])[0]).toMatchObject({
        state: 'UNAVAILABLE',
        reason: expect.stringMatching(/models.load: lazy/),
      })
      const res = await request(`${url}/v2/models/add/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: addBody,
      })
      expect(res.statusCode).toBe(200)
      expect(((await res.body.json()) as { outputs: { data: number[] }[] }).outputs[0].data).toEqual([
        2, 3, 4, 5,
      ])
      process.emit('SIGUSR2', 'SIGUSR2')
      expect((await running).signal).toBe('SIGUSR2')
    } finally {
      await done()
    }
  })

  it('authenticates by default, and says how to get the database it needs', async () => {
    await expect(
      serve(new HelixHome(dir), { port: 0, logLevel: 'silent' }, { logDestination: 2 }),
    ).rejects.toMatchObject({
      code: 'DB_NOT_STARTED',
      message: expect.stringContaining('the daemon needs it to authenticate callers'),
      hint: expect.stringContaining('--no-auth'),
    })
  })
})

describe.skipIf(!hasTool('openssl'))('TLS and mTLS', () => {
  let ca: Buffer
  let client: { cert: Buffer; key: Buffer }
  let stranger: { cert: Buffer; key: Buffer }
  beforeAll(async () => {
    const { certsDir, strangerDir } = await writeTestCerts(dir)
    ca = await readFile(join(certsDir, 'ca.crt'))
    client = {
      cert: await readFile(join(certsDir, 'client.crt')),
      key: await readFile(join(certsDir, 'client.key')),
    }
    stranger = {
      cert: await readFile(join(strangerDir, 'client.crt')),
      key: await readFile(join(strangerDir, 'client.key')),
    }
  })

  const get = (url: string, tls: Record<string, unknown>) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpsRequest(`${url}/v2/health/live`, { ca, ...tls, agent: false }, (res) => {
        let body = ''
        res.on('data', (c) => {
          body += c
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      })
      req.on('error', reject)
      req.end()
    })

  it('--tls serves HTTPS with the server certificate, TLS 1.2+ only', async () => {
    const { daemon } = await daemonFor({ tls: true })
    try {
      expect(daemon.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/)
      expect(await get(daemon.url, {})).toEqual({ status: 200, body: '{"live":true}' })
      const port = Number(new URL(daemon.url).port)
      await expect(
        new Promise((resolve, reject) => {
          const socket = connect(
            { host: '127.0.0.1', port, ca, maxVersion: 'TLSv1.1', minVersion: 'TLSv1' },
            () => resolve(socket),
          )
          socket.on('error', reject)
        }),
      ).rejects.toThrow()
    } finally {
      await daemon.shutdown()
    }
  })

  it('--mtls requires a client certificate signed by the helix CA', async () => {
    const { daemon } = await daemonFor({ mtls: true })
    try {
      expect(await get(daemon.url, client)).toEqual({ status: 200, body: '{"live":true}' })
      await expect(get(daemon.url, {})).rejects.toThrow()
      await expect(get(daemon.url, stranger)).rejects.toThrow()
    } finally {
      await daemon.shutdown()
    }
  })
})

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 20_000) {
  const end = Date.now() + timeoutMs
  while (Date.now() < end) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error('condition not met in time')
}
