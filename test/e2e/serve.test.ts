import { copyFile, mkdir, readFile, stat } from 'node:fs/promises'
import { request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { runHelix, tempDir } from '../helpers/cli.js'
import { addModel, addToRepository, CLS_MODEL_PATH } from '../helpers/onnx-models.js'
import { startServe } from '../helpers/serve.js'

async function waitForReady(url: string, tls?: Record<string, unknown>) {
  for (let i = 0; i < 300; i++) {
    const status = tls
      ? (await httpsGet(`${url}/v2/health/ready`, tls).catch(() => ({ status: 0 }))).status
      : (await request(`${url}/v2/health/ready`)).statusCode
    if (status === 200) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('daemon never became ready')
}

/** Waits until a request sits in the model's queue (the metrics say so). */
async function waitForQueued(url: string, model: string) {
  const queued = new RegExp(`^helix_inference_queue_depth\\{[^}]*model="${model}"[^}]*\\} [1-9]`, 'm')
  for (let i = 0; i < 200; i++) {
    if (queued.test(await (await request(`${url}/metrics`)).body.text())) return
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`no request queued for ${model}`)
}

function httpsGet(url: string, tls: Record<string, unknown>) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = httpsRequest(url, { ...tls, agent: false }, (res) => {
      let body = ''
      res.on('data', (c) => {
        body += c
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

let dir: string
let cleanup: () => Promise<void>
const shape = [3, 3, 48, 192]
const input = new Float32Array(shape.reduce((a, b) => a * b, 1)).map((_, i) => Math.cos(i / 7))
let expected: Float32Array

beforeAll(async () => {
  ;({ dir, cleanup } = await tempDir('helix-serve-e2e-'))
  await mkdir(join(dir, 'models', 'cls', '1'), { recursive: true })
  await copyFile(CLS_MODEL_PATH, join(dir, 'models', 'cls', '1', 'model.onnx'))
  // A lone request waits the whole queue delay: an in-flight request for the shutdown test.
  await addToRepository(join(dir, 'models'), 'waiting', addModel(), {
    config: { max_batch_size: 8, max_queue_delay_ms: 1500 },
  })
  const session = await ort.InferenceSession.create(CLS_MODEL_PATH)
  expected = (await session.run({ x: new ort.Tensor('float32', input, shape) }))['softmax_0.tmp_0']
    .data as Float32Array
  await session.release()
})
afterAll(async () => cleanup())

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>) {
  expect(a.length).toBe(b.length)
  let max = 0
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]))
  return max
}

describe('helix serve', () => {
  it('serves the cls model over HTTP (JSON and binary) as onnxruntime-node computes it, and SIGTERM drains then exits 0', async () => {
    const served = await startServe(dir)
    try {
      expect(served.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      await waitForReady(served.url)

      const json = await request(`${served.url}/v2/models/cls/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape, data: Array.from(input) }] }),
      })
      expect(json.statusCode).toBe(200)
      const body = (await json.body.json()) as { model_version: string; outputs: { data: number[] }[] }
      expect(body.model_version).toBe('1')
      expect(maxAbsDiff(body.outputs[0].data, expected)).toBeLessThanOrEqual(1e-5)

      const header = Buffer.from(
        JSON.stringify({
          inputs: [
            { name: 'x', datatype: 'FP32', shape, parameters: { binary_data_size: input.byteLength } },
          ],
          parameters: { binary_data_output: true },
        }),
      )
      const binary = await request(`${served.url}/v2/models/cls/infer`, {
        method: 'POST',
        headers: {
          'content-type': 'application/octet-stream',
          'inference-header-content-length': String(header.length),
        },
        body: Buffer.concat([header, Buffer.from(input.buffer)]),
      })
      expect(binary.statusCode).toBe(200)
      const raw = Buffer.from(await binary.body.arrayBuffer())
      const jsonLength = Number(binary.headers['inference-header-content-length'])
      const tail = raw.subarray(jsonLength)
      expect(
        maxAbsDiff(
          new Float32Array(tail.buffer.slice(tail.byteOffset, tail.byteOffset + tail.length)),
          expected,
        ),
      ).toBeLessThanOrEqual(1e-5)

      const missing = await request(`${served.url}/v2/models/nope/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ inputs: [{ name: 'a', datatype: 'FP32', shape: [1], data: [1] }] }),
      })
      expect(missing.statusCode).toBe(404)
      await missing.body.dump()

      // --port 0: status finds the real port through data/daemon.json, without --url.
      const status = await runHelix(['status', '--dir', dir, '--json'])
      expect(JSON.parse(status.stdout).daemon).toMatchObject({
        url: served.url,
        source: 'record',
        reachable: true,
        ready: true,
      })

      const inflight = request(`${served.url}/v2/models/waiting/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          inputs: [
            { name: 'a', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] },
            { name: 'b', datatype: 'FP32', shape: [1, 4], data: [4, 3, 2, 1] },
          ],
        }),
      })
      await waitForQueued(served.url, 'waiting')
      // A WebSocket on /v1/realtime is told why it closes (1001 going away), not cut (1006).
      const socket = new WebSocket(`${served.url.replace(/^http/, 'ws')}/v1/realtime`)
      await new Promise((resolve, reject) => {
        socket.once('open', resolve)
        socket.once('error', reject)
      })
      const closed = new Promise<number>((resolve) => socket.once('close', (code: number) => resolve(code)))
      served.child.kill('SIGTERM')
      expect(await closed).toBe(1001)
      const answer = await inflight
      expect(answer.statusCode).toBe(200)
      // The connection closes after it: a proxy's keep-alive pool must not send another request on it.
      expect(answer.headers.connection).toBe('close')
      expect(((await answer.body.json()) as { outputs: { data: number[] }[] }).outputs[0].data).toEqual([
        5, 5, 5, 5,
      ])
      const result = await served.child
      expect(result.exitCode).toBe(0)
      expect(served.output()).toContain('helix serve stopped (SIGTERM)')
      await expect(stat(join(dir, 'data', 'daemon.json'))).rejects.toMatchObject({ code: 'ENOENT' })
      // Not a terminal: JSON log lines, one per failed request (with its id), none for the others, no bodies.
      expect(served.output()).toMatch(
        /"reqId":"[0-9a-f-]{36}","req":\{"method":"POST","url":"\/v2\/models\/nope\/infer".*"statusCode":404/,
      )
      expect(served.output()).not.toContain('"url":"/v2/models/cls/infer"')
      expect(served.output()).not.toContain('incoming request')
      expect(served.output()).not.toContain('"inputs"')
    } finally {
      served.child.kill('SIGKILL')
    }
  })

  it('--log-format pretty prints one short human line per record', async () => {
    const served = await startServe(dir, ['--log-format', 'pretty'])
    try {
      await waitForReady(served.url)
      const missing = await request(`${served.url}/v2/models/nope`)
      expect(missing.statusCode).toBe(404)
      await missing.body.dump()
      for (let i = 0; i < 100 && !served.output().includes('/v2/models/nope'); i++)
        await new Promise((r) => setTimeout(r, 20))
      expect(served.output()).toMatch(
        /^\d\d:\d\d:\d\d INFO {2}request completed GET \/v2\/models\/nope 404 [\d.]+ms reqId=\S+ code=MODEL_NOT_FOUND/m,
      )
      expect(served.output()).toMatch(/^\d\d:\d\d:\d\d INFO {2}models loaded ready=true$/m)
      expect(served.output()).not.toContain('{"level"')
    } finally {
      served.child.kill('SIGTERM')
      expect((await served.child).exitCode).toBe(0)
    }
  })

  it('refuses a bad flag value and missing certificates with exit 2 and a hint', async () => {
    const missing = await runHelix(['serve', '--dir', dir, '--tls', '--port', '0'])
    expect(missing.exitCode).toBe(2)
    expect(missing.stderr).toMatch(/certs\/server\.crt/)
    expect(missing.stderr).toMatch(/Hint: .*helix init/)
    const level = await runHelix(['serve', '--dir', dir, '--log-level', 'loud'])
    expect(level.exitCode).toBe(2)
  })

  it('authenticates by default, so it needs the database and says how to get one', async () => {
    const result = await runHelix(['serve', '--dir', dir, '--port', '0', '--json'])
    expect(result.exitCode).toBe(1)
    const { error } = JSON.parse(result.stderr.trim().split('\n').pop() ?? '{}')
    expect(error.code).toBe('DB_NOT_STARTED')
    expect(error.message).toContain('the daemon needs it to authenticate callers')
    expect(error.hint).toContain('--no-auth')
  })
})

describe('helix serve --tls / --mtls with certificates from helix init', () => {
  let tlsDir: string
  let ca: Buffer
  let client: { cert: Buffer; key: Buffer }
  beforeAll(async () => {
    tlsDir = join(dir, 'tls-home')
    const init = await runHelix(['init', '--yes', '--dir', tlsDir])
    expect(init.exitCode, init.stderr).toBe(0)
    ca = await readFile(join(tlsDir, 'certs', 'ca.crt'))
    client = {
      cert: await readFile(join(tlsDir, 'certs', 'client.crt')),
      key: await readFile(join(tlsDir, 'certs', 'client.key')),
    }
  })

  it('--tls completes a TLS handshake against the helix CA', async () => {
    const served = await startServe(tlsDir, ['--tls'])
    try {
      expect(served.url).toMatch(/^https:/)
      await waitForReady(served.url, { ca })
      expect(await httpsGet(`${served.url}/v2/health/live`, { ca })).toEqual({
        status: 200,
        body: '{"live":true}',
      })
    } finally {
      served.child.kill('SIGTERM')
      expect((await served.child).exitCode).toBe(0)
    }
  })

  it('--mtls accepts the helix client certificate and refuses a client without one', async () => {
    const served = await startServe(tlsDir, ['--mtls'])
    try {
      await waitForReady(served.url, { ca, ...client })
      expect(await httpsGet(`${served.url}/v2/health/live`, { ca, ...client })).toEqual({
        status: 200,
        body: '{"live":true}',
      })
      await expect(httpsGet(`${served.url}/v2/health/live`, { ca })).rejects.toThrow()
    } finally {
      served.child.kill('SIGTERM')
      expect((await served.child).exitCode).toBe(0)
    }
  })
})
