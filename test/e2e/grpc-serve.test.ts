import { copyFile, mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { credentials, type ServiceError, status } from '@grpc/grpc-js'
import { execa, type ResultPromise } from 'execa'
import ort from 'onnxruntime-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { client, floatsOf, type TestClient } from '../grpc/fixtures.js'
import { HELIX_BIN, runHelix, runHelixJson, tempDir } from '../helpers/cli.js'
import { addModel, addToRepository, CLS_MODEL_PATH } from '../helpers/onnx-models.js'

/** A real `helix serve` child and the REST URL and gRPC target it printed. */
interface Served {
  url: string
  grpc: string
  child: ResultPromise
  output: () => string
}

async function startServe(dir: string, args: string[] = []): Promise<Served> {
  const child = execa('node', [HELIX_BIN, 'serve', '--dir', dir, '--port', '0', '--no-auth', ...args], {
    reject: false,
    env: { HELIX_DIR: undefined },
    stdin: 'ignore',
    all: true,
  })
  let output = ''
  const [url, grpc] = await new Promise<[string, string]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`helix serve did not start:\n${output}`)), 60_000)
    child.all?.on('data', (chunk: Buffer) => {
      output += chunk
      const rest = /helix serve listening on (\S+)/.exec(output)
      const grpc = /helix serve gRPC listening on (\S+)/.exec(output)
      if (rest && grpc) {
        clearTimeout(timer)
        resolve([rest[1], grpc[1]])
      }
    })
    child.then((r) => reject(new Error(`helix serve exited ${r.exitCode}:\n${output}`)))
  })
  return { url, grpc, child, output: () => output }
}

async function ready(c: TestClient): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const answer = await c.call<{ ready: boolean }>('ServerReady').catch(() => ({ ready: false }))
    if (answer.ready) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('the gRPC face never became ready')
}

let dir: string
let cleanup: () => Promise<void>
const shape = [2, 3, 48, 192]
const input = new Float32Array(shape.reduce((a, b) => a * b, 1)).map((_, i) => Math.sin(i / 11))
let expected: Float32Array

function clsRequest() {
  return {
    model_name: 'cls',
    inputs: [{ name: 'x', datatype: 'FP32', shape }],
    raw_input_contents: [Buffer.from(input.buffer)],
  }
}

beforeAll(async () => {
  ;({ dir, cleanup } = await tempDir('helix-grpc-e2e-'))
  const init = await runHelix(['init', '--yes', '--dir', dir])
  expect(init.exitCode, init.stderr).toBe(0)
  await mkdir(join(dir, 'models', 'cls', '1'), { recursive: true })
  await copyFile(CLS_MODEL_PATH, join(dir, 'models', 'cls', '1', 'model.onnx'))
  await addToRepository(join(dir, 'models'), 'waiting', addModel(), {
    config: { max_batch_size: 8, max_queue_delay_ms: 1500 },
  })
  const session = await ort.InferenceSession.create(CLS_MODEL_PATH)
  expected = (await session.run({ x: new ort.Tensor('float32', input, shape) }))['softmax_0.tmp_0']
    .data as Float32Array
  await session.release()
}, 120_000)
afterAll(async () => cleanup())

describe('helix serve: the gRPC face of the built binary', () => {
  it('listens beside REST, serves cls as onnxruntime computes it, records itself, and SIGTERM drains a stream', async () => {
    const served = await startServe(dir)
    const c = client(served.grpc, 'inference.GRPCInferenceService')
    try {
      const restPort = Number(new URL(served.url).port)
      expect(served.grpc).toMatch(/^127\.0\.0\.1:\d+$/)
      expect(Number(served.grpc.split(':')[1])).not.toBe(restPort)
      const record = JSON.parse(await readFile(join(dir, 'data', 'daemon.json'), 'utf8'))
      expect(record.grpc).toEqual({
        target: served.grpc,
        port: Number(served.grpc.split(':')[1]),
        tls: false,
      })
      await ready(c)
      const answer = await c.call<{ raw_output_contents: Buffer[] }>('ModelInfer', clsRequest())
      const got = floatsOf(answer.raw_output_contents[0])
      expect(got).toHaveLength(expected.length)
      expect(Math.max(...got.map((v, i) => Math.abs(v - expected[i])))).toBeLessThanOrEqual(1e-5)

      // An open stream with a request in flight (it waits 1.5 s in the queue for company).
      const stream = c.stream<unknown, { infer_response: { id: string } }>('ModelStreamInfer')
      const ids: string[] = []
      stream.on('data', (a: { infer_response: { id: string } }) => ids.push(a.infer_response.id))
      const ended = new Promise<string>((resolve) => {
        stream.on('end', () => resolve('end'))
        stream.on('error', (err: ServiceError) => resolve(`error ${status[err.code]}`))
      })
      stream.write({
        model_name: 'waiting',
        id: 'in-flight',
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [1, 4] },
          { name: 'b', datatype: 'FP32', shape: [1, 4] },
        ],
        raw_input_contents: [
          Buffer.from(new Float32Array(4).buffer),
          Buffer.from(new Float32Array(4).buffer),
        ],
      })
      await new Promise((r) => setTimeout(r, 300))
      served.child.kill('SIGTERM')
      expect(await ended).toBe('end')
      expect(ids).toEqual(['in-flight'])
      expect((await served.child).exitCode).toBe(0)
    } finally {
      c.close()
      if (served.child.exitCode === null) served.child.kill('SIGKILL')
    }
  })

  it('helix top draws the running daemon frame after frame from its gRPC face; --json returns snapshots', async () => {
    const served = await startServe(dir)
    try {
      const top = await runHelix(['top', '--dir', dir, '--count', '2', '--interval', '0.3', '--no-gpus'])
      expect(top.exitCode, top.stderr).toBe(0)
      const frames = top.stdout.split(/^helix top — /m).filter(Boolean)
      expect(frames, top.stdout).toHaveLength(2)
      expect(frames[0]).toContain(served.grpc)
      for (const frame of frames) {
        expect(frame).toMatch(/^MODEL +VERSIONS +REQ\/S/m)
        expect(frame).toMatch(/^cls +1:READY /m)
        expect(frame).toMatch(/^waiting +1:READY /m)
        expect(frame).toMatch(/alerts +none firing/)
      }
      // Rates need a previous frame: "-" in the first, a number in the second.
      expect(frames[0]).toMatch(/^cls +1:READY +- /m)
      expect(frames[1]).toMatch(/^cls +1:READY +\d+(\.\d)? /m)

      const json = await runHelixJson<{
        snapshots: { server: { pid: number; ready: boolean }; models: { name: string }[] }[]
      }>(['top', '--dir', dir, '--no-gpus'])
      expect(json.snapshots).toHaveLength(1)
      expect(json.snapshots[0].server.ready).toBe(true)
      expect(json.snapshots[0].models.map((m) => m.name).sort()).toEqual(['cls', 'waiting'])

      const bad = await runHelix(['top', '--dir', dir, '--interval', 'soon'])
      expect(bad.exitCode).toBe(2)
      expect(bad.stderr).toMatch(/--interval must be a number of seconds/)
    } finally {
      served.child.kill('SIGTERM')
      await served.child
    }
    const stopped = await runHelix(['top', '--dir', dir, '--url', 'http://127.0.0.1:9', '--count', '1'])
    expect(stopped.exitCode).toBe(1)
    expect(stopped.stderr).toMatch(/No answer from the daemon's gRPC face at 127\.0\.0\.1:10/)
    expect(stopped.stderr).toMatch(/Hint: Start it with `helix serve`/)
  })

  it('--grpc-port picks the port and --no-grpc turns the face off', async () => {
    const port = 20000 + Math.floor(Math.random() * 20000)
    const fixed = await startServe(dir, ['--grpc-port', String(port)])
    try {
      expect(fixed.grpc).toBe(`127.0.0.1:${port}`)
    } finally {
      fixed.child.kill('SIGTERM')
      await fixed.child
    }
    const child = execa('node', [HELIX_BIN, 'serve', '--dir', dir, '--port', '0', '--no-auth', '--no-grpc'], {
      reject: false,
      env: { HELIX_DIR: undefined },
      stdin: 'ignore',
      all: true,
    })
    let output = ''
    child.all?.on('data', (chunk: Buffer) => {
      output += chunk
    })
    await expect.poll(() => output, { timeout: 30_000 }).toMatch(/helix serve listening on/)
    await new Promise((r) => setTimeout(r, 200))
    expect(output).not.toMatch(/gRPC listening/)
    const record = JSON.parse(await readFile(join(dir, 'data', 'daemon.json'), 'utf8'))
    expect(record.grpc).toBeUndefined()
    child.kill('SIGTERM')
    expect((await child).exitCode).toBe(0)
  })

  it('--tls serves gRPC over TLS with the helix certificates; a client that does not trust the CA is refused', async () => {
    const served = await startServe(dir, ['--tls'])
    const ca = await readFile(join(dir, 'certs', 'ca.crt'))
    const trusted = client(served.grpc, 'inference.GRPCInferenceService', {
      credentials: credentials.createSsl(ca),
    })
    const untrusted = client(served.grpc, 'inference.GRPCInferenceService', {
      credentials: credentials.createSsl(),
    })
    try {
      await ready(trusted)
      expect(await trusted.call('ServerLive')).toEqual({ live: true })
      const refused = await untrusted.failure('ServerLive', {}, { deadline: new Date(Date.now() + 5000) })
      expect(refused.code).toBe(status.UNAVAILABLE)
    } finally {
      trusted.close()
      untrusted.close()
      served.child.kill('SIGTERM')
      expect((await served.child).exitCode).toBe(0)
    }
  })

  it('--mtls requires a client certificate from the helix CA', async () => {
    const served = await startServe(dir, ['--mtls'])
    const ca = await readFile(join(dir, 'certs', 'ca.crt'))
    const key = await readFile(join(dir, 'certs', 'client.key'))
    const cert = await readFile(join(dir, 'certs', 'client.crt'))
    const withCert = client(served.grpc, 'inference.GRPCInferenceService', {
      credentials: credentials.createSsl(ca, key, cert),
    })
    const withoutCert = client(served.grpc, 'inference.GRPCInferenceService', {
      credentials: credentials.createSsl(ca),
    })
    try {
      await ready(withCert)
      const answer = await withCert.call<{ raw_output_contents: Buffer[] }>('ModelInfer', clsRequest())
      expect(floatsOf(answer.raw_output_contents[0])).toHaveLength(expected.length)
      const refused = await withoutCert.failure('ServerLive', {}, { deadline: new Date(Date.now() + 5000) })
      expect(refused.code).toBe(status.UNAVAILABLE)
    } finally {
      withCert.close()
      withoutCert.close()
      served.child.kill('SIGTERM')
      expect((await served.child).exitCode).toBe(0)
    }
  })
})
