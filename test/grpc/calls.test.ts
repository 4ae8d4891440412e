import http2 from 'node:http2'
import { join } from 'node:path'
import {
  type ClientReadableStream,
  loadPackageDefinition,
  Metadata,
  type ServiceError,
  status,
} from '@grpc/grpc-js'
import { loadSync } from '@grpc/proto-loader'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CONNECTION_WINDOW_BYTES, STREAM_WINDOW_BYTES } from '../../src/grpc/server.js'
import { ROOT } from '../helpers/cli.js'
import { addModel, addToRepository, scaleModel } from '../helpers/onnx-models.js'
import { bytesOf, client, floatsOf, type TestGrpc, testGrpc } from './fixtures.js'

let t: TestGrpc
beforeAll(async () => {
  t = await testGrpc()
  // A request alone waits up to 5 s in this model's queue for company: it stays queued.
  await addToRepository(t.repositoryDir, 'waiting', addModel(), {
    config: { max_batch_size: 8, max_queue_delay_ms: 5000 },
  })
  await t.service.load('waiting')
  await addToRepository(t.repositoryDir, 'lingering', addModel(), {
    config: { max_batch_size: 8, max_queue_delay_ms: 5000 },
  })
  await t.service.load('lingering')
}, 60_000)
afterAll(async () => t?.close())

interface StreamAnswer {
  error_message: string
  infer_response: { id: string; model_version: string; raw_output_contents: Buffer[] }
}

function addRequest(id: string, row: number[]) {
  return {
    model_name: 'add',
    id,
    inputs: [
      { name: 'a', datatype: 'FP32', shape: [1, 4] },
      { name: 'b', datatype: 'FP32', shape: [1, 4] },
    ],
    raw_input_contents: [bytesOf(new Float32Array(row)), bytesOf(new Float32Array(row))],
  }
}

const SLOW_ROWS = 512

/** A request that keeps the 'slow' model (max_batch_size 0, queue of 1) busy for a while. */
function slowRequest(id = 'slow') {
  return {
    model_name: 'slow',
    id,
    inputs: [{ name: 'x', datatype: 'FP32', shape: [SLOW_ROWS, 256] }],
    raw_input_contents: [bytesOf(new Float32Array(SLOW_ROWS * 256).fill(0.01))],
  }
}

async function metricText(): Promise<string> {
  return t.metrics.registry.metrics()
}

describe('ModelStreamInfer', () => {
  it('answers 100 requests in order on one stream; a bad one gets error_message and the stream goes on', async () => {
    const stream = t.inference.stream<unknown, StreamAnswer>('ModelStreamInfer')
    const answers: StreamAnswer[] = []
    stream.on('data', (answer: StreamAnswer) => answers.push(answer))
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('end', resolve)
      stream.on('error', reject)
    })
    for (let i = 0; i < 100; i++) {
      if (i === 50) stream.write({ model_name: 'nope', id: 'bad', inputs: [] })
      else stream.write(addRequest(`m${i}`, [i, i + 1, i + 2, i + 3]))
    }
    stream.end()
    await ended
    expect(answers).toHaveLength(100)
    expect(answers.map((a) => a.infer_response.id)).toEqual(
      Array.from({ length: 100 }, (_, i) => (i === 50 ? 'bad' : `m${i}`)),
    )
    expect(answers[50].error_message).toMatch(/Model 'nope'/)
    for (const [i, answer] of answers.entries()) {
      if (i === 50) continue
      expect(answer.error_message ?? '').toBe('')
      expect(floatsOf(answer.infer_response.raw_output_contents[0])).toEqual([
        2 * i,
        2 * i + 2,
        2 * i + 4,
        2 * i + 6,
      ])
    }
  })

  it('a client that cancels its stream has its queued work dropped', async () => {
    const stream = t.inference.stream<unknown, StreamAnswer>('ModelStreamInfer')
    const failed = new Promise<ServiceError>((resolve) => stream.on('error', resolve))
    stream.on('data', () => {})
    stream.write({ ...addRequest('s1', [1, 2, 3, 4]), model_name: 'lingering' })
    stream.write({ ...addRequest('s2', [1, 2, 3, 4]), model_name: 'lingering' })
    await expect
      .poll(
        async () => /helix_inference_queue_depth\{model="lingering",version="1"\} 2/.test(await metricText()),
        {
          timeout: 3000,
        },
      )
      .toBe(true)
    stream.cancel()
    expect((await failed).code).toBe(status.CANCELLED)
    await expect
      .poll(async () => metricText(), { timeout: 5000 })
      .toMatch(
        /helix_inference_requests_total\{model="lingering",version="",status="CANCELLED",protocol="grpc"\} 2/,
      )
    expect(await metricText()).not.toMatch(/helix_inference_batch_size_count\{model="lingering"\} [1-9]/)
  })
})

describe('deadlines, cancellation and limits', () => {
  it('a request whose deadline passes in the queue is dropped (DEADLINE_EXCEEDED, never computed)', async () => {
    const request = { ...addRequest('late', [1, 2, 3, 4]), model_name: 'waiting' }
    const started = Date.now()
    const late = await t.inference.failure('ModelInfer', request, { deadline: new Date(Date.now() + 200) })
    expect(late.code).toBe(status.DEADLINE_EXCEEDED)
    expect(Date.now() - started).toBeLessThan(2000)
    // The server gave up on it too (not only the client), and it never reached the model.
    await expect
      .poll(async () => metricText(), { timeout: 5000 })
      .toMatch(
        /helix_inference_requests_total\{model="waiting",version="",status="INFER_TIMEOUT",protocol="grpc"\} 1/,
      )
    expect(await metricText()).not.toMatch(/helix_inference_batch_size_count\{model="waiting"\} [1-9]/)
  })

  it('a client that cancels a queued unary call has it dropped (CANCELLED, never computed)', async () => {
    const request = { ...addRequest('gone', [1, 2, 3, 4]), model_name: 'waiting' }
    const fn = t.inference.raw.ModelInfer as (
      r: unknown,
      m: unknown,
      cb: (err: ServiceError | null) => void,
    ) => { cancel(): void }
    let code: number | undefined
    const call = fn.call(t.inference.raw, request, t.inference.metadata(), (err) => {
      code = err?.code
    })
    await expect
      .poll(
        async () => /helix_inference_queue_depth\{model="waiting",version="1"\} 1/.test(await metricText()),
        { timeout: 3000 },
      )
      .toBe(true)
    call.cancel()
    await expect.poll(() => code, { timeout: 3000 }).toBe(status.CANCELLED)
    await expect
      .poll(async () => metricText(), { timeout: 5000 })
      .toMatch(
        /helix_inference_requests_total\{model="waiting",version="",status="CANCELLED",protocol="grpc"\} 1/,
      )
    expect(await metricText()).not.toMatch(/helix_inference_batch_size_count\{model="waiting"\} [1-9]/)
  })

  it('a full queue answers RESOURCE_EXHAUSTED with retry-after and grpc-retry-pushback-ms', async () => {
    const calls = Array.from({ length: 6 }, (_, i) =>
      t.inference.call('ModelInfer', slowRequest(`q${i}`)).then(
        () => undefined,
        (err: ServiceError) => err,
      ),
    )
    const errors = (await Promise.all(calls)).filter((e): e is ServiceError => e !== undefined)
    expect(errors.length).toBeGreaterThan(0)
    for (const err of errors) {
      expect(err.code).toBe(status.RESOURCE_EXHAUSTED)
      expect(err.details).toMatch(/queue/i)
      expect(Number(err.metadata.get('retry-after')[0])).toBeGreaterThanOrEqual(1)
      expect(Number(err.metadata.get('grpc-retry-pushback-ms')[0])).toBeGreaterThanOrEqual(1000)
      expect(err.metadata.get('helix-error-code')).toEqual(['QUEUE_FULL'])
    }
  })

  it('a message over max_message_bytes gets RESOURCE_EXHAUSTED and the server keeps serving', async () => {
    const small = await testGrpc({ maxMessageBytes: 64 * 1024 })
    try {
      const big = {
        model_name: 'add',
        inputs: [{ name: 'a', datatype: 'FP32', shape: [8192, 4] }],
        raw_input_contents: [bytesOf(new Float32Array(8192 * 4))],
      }
      const err = await small.inference.failure('ModelInfer', big)
      expect(err.code).toBe(status.RESOURCE_EXHAUSTED)
      expect(err.details).toMatch(/larger than max/i)
      expect(await small.inference.call('ServerLive')).toEqual({ live: true })
    } finally {
      await small.close()
    }
  })

  it('offers each connection HTTP/2 receive windows that take whole tensors, not 64 KB', async () => {
    const session = http2.connect(`http://${t.server.target}`)
    try {
      const settings = await new Promise<http2.Settings>((resolve, reject) => {
        session.on('error', reject)
        // The server's first SETTINGS frame, then the one that widens each stream's window.
        session.on('remoteSettings', (s) => {
          if ((s.initialWindowSize ?? 0) > 65_535) resolve(s)
        })
      })
      expect(settings.initialWindowSize).toBe(STREAM_WINDOW_BYTES)
      // The connection's window: what this client may send before the server has read anything.
      await expect.poll(() => session.state.remoteWindowSize).toBe(CONNECTION_WINDOW_BYTES)
    } finally {
      session.destroy()
    }
  })

  it('counts calls in /metrics with their method and status code, and inferences with protocol="grpc"', async () => {
    await t.inference.call('ModelInfer', addRequest('m', [1, 2, 3, 4]))
    const text = await metricText()
    expect(text).toMatch(
      /helix_grpc_requests_total\{method="\/inference.GRPCInferenceService\/ModelInfer",code="OK"\} [1-9]/,
    )
    expect(text).toMatch(
      /helix_inference_requests_total\{model="add",version="1",status="success",protocol="grpc"\} [1-9]/,
    )
    expect(text).toMatch(
      /helix_grpc_request_duration_seconds_count\{method="\/inference.GRPCInferenceService\/ModelInfer",code="OK"\} [1-9]/,
    )
  })
})

describe('versions, A/B splits and shadows behave as over REST', () => {
  it('a sticky_header in metadata pins the version of a 50/50 split; the answer names the version that ran', async () => {
    const traffic = {
      version_policy: { all: true },
      traffic: [
        { version: 1, weight: 50 },
        { version: 2, weight: 50 },
      ],
      sticky_header: 'X-User',
    }
    await addToRepository(t.repositoryDir, 'ab', scaleModel(2), { version: 1, config: traffic })
    await addToRepository(t.repositoryDir, 'ab', scaleModel(3), { version: 2 })
    await t.service.load('ab')
    const x = [1, 2, 3, 4]
    const call = (user: string) =>
      t.inference.call<{ model_version: string; raw_output_contents: Buffer[] }>(
        'ModelInfer',
        {
          model_name: 'ab',
          inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }],
          raw_input_contents: [bytesOf(new Float32Array(x))],
        },
        { metadata: t.inference.metadata({ 'x-user': user }) },
      )
    for (const user of ['alice', 'bob', 'carol']) {
      const answers = await Promise.all(Array.from({ length: 10 }, () => call(user)))
      expect(new Set(answers.map((a) => a.model_version)).size).toBe(1)
      for (const a of answers) {
        const factor = a.model_version === '1' ? 2 : 3
        expect(floatsOf(a.raw_output_contents[0])).toEqual(x.map((v) => v * factor))
      }
    }
    const users = await Promise.all(Array.from({ length: 60 }, (_, i) => call(`user-${i}`)))
    expect(new Set(users.map((a) => a.model_version))).toEqual(new Set(['1', '2']))
  })
})

describe('grpc.health.v1.Health and reflection', () => {
  it('Check reports the server, each model, and NOT_FOUND for unknown names', async () => {
    expect(await t.health.call('Check', { service: '' })).toEqual({ status: 'SERVING' })
    expect(await t.health.call('Check', { service: 'inference.GRPCInferenceService' })).toEqual({
      status: 'SERVING',
    })
    expect(await t.health.call('Check', { service: 'cls' })).toEqual({ status: 'SERVING' })
    expect(await t.health.call('Check', { service: 'broken' })).toEqual({ status: 'NOT_SERVING' })
    expect((await t.health.failure('Check', { service: 'nope' })).code).toBe(status.NOT_FOUND)
  })

  it('Watch streams a model going out of service and back', async () => {
    const watch = (
      t.health.raw.Watch as (r: unknown, m: Metadata) => ClientReadableStream<{ status: string }>
    ).call(t.health.raw, { service: 'scale' }, new Metadata())
    const seen: string[] = []
    watch.on('data', (m: { status: string }) => seen.push(m.status))
    watch.on('error', () => {})
    await expect.poll(() => seen, { timeout: 3000 }).toEqual(['SERVING'])
    await t.service.unload('scale')
    await expect.poll(() => seen, { timeout: 3000 }).toEqual(['SERVING', 'NOT_SERVING'])
    await t.service.load('scale')
    await expect.poll(() => seen, { timeout: 5000 }).toEqual(['SERVING', 'NOT_SERVING', 'SERVING'])
    watch.cancel()
  })

  it('server reflection lists the services, so tools work without our proto files', async () => {
    const definition = loadSync('grpc/reflection/v1/reflection.proto', {
      includeDirs: [join(ROOT, 'node_modules', '@grpc', 'reflection', 'build', 'proto')],
      keepCase: true,
    })
    const { grpc } = loadPackageDefinition(definition) as unknown as {
      grpc: {
        reflection: {
          v1: { ServerReflection: new (target: string, creds: unknown) => Record<string, () => unknown> }
        }
      }
    }
    const { credentials } = await import('@grpc/grpc-js')
    const reflection = new grpc.reflection.v1.ServerReflection(t.server.target, credentials.createInsecure())
    const stream = reflection.ServerReflectionInfo() as unknown as NodeJS.ReadWriteStream & { end(): void }
    const answer = new Promise<{ list_services_response: { service: { name: string }[] } }>(
      (resolve, reject) => {
        stream.on('data', resolve)
        stream.on('error', reject)
      },
    )
    stream.write({ list_services: '' } as never)
    const names = (await answer).list_services_response.service.map((s) => s.name)
    stream.end()
    expect(names).toEqual(expect.arrayContaining(['inference.GRPCInferenceService', 'grpc.health.v1.Health']))
    ;(reflection as unknown as { close(): void }).close()
  })

  it('a second client on the same server shares nothing (the fixture client is not special)', async () => {
    const other = client(t.server.target, 'inference.GRPCInferenceService')
    expect(await other.call('ServerReady')).toEqual({ ready: true })
    other.close()
  })
})

describe('draining', () => {
  it('shutdown finishes in-flight unary calls, ends open streams cleanly and reports NOT_SERVING', async () => {
    const d = await testGrpc()
    try {
      const inFlight = d.inference.call<{ id: string }>('ModelInfer', slowRequest('in-flight'))
      const stream = d.inference.stream<unknown, StreamAnswer>('ModelStreamInfer')
      const answers: StreamAnswer[] = []
      stream.on('data', (a: StreamAnswer) => answers.push(a))
      const streamEnded = new Promise<string>((resolve) => {
        stream.on('end', () => resolve('end'))
        stream.on('error', (err: ServiceError) => resolve(`error ${err.code}`))
      })
      stream.write(addRequest('before-drain', [1, 1, 1, 1]))
      await expect.poll(() => answers.length, { timeout: 3000 }).toBe(1)
      await new Promise((r) => setTimeout(r, 10))
      const shutdown = d.server.shutdown(5000)
      expect((await inFlight).id).toBe('in-flight')
      expect(await streamEnded).toBe('end')
      await shutdown
      expect(answers.map((a) => a.infer_response.id)).toEqual(['before-drain'])
      const refused = await d.inference.failure('ServerLive', {}, { deadline: new Date(Date.now() + 1000) })
      expect([status.UNAVAILABLE, status.DEADLINE_EXCEEDED]).toContain(refused.code)
    } finally {
      await d.close()
    }
  })
})
