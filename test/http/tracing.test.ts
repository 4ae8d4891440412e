import { closeSync, openSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { Metadata } from '@grpc/grpc-js'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { silentLogger } from '../../src/core/logger.js'
import { startTracing } from '../../src/core/tracing.js'
import { loadRuntimeConfig } from '../../src/http/serve-config.js'
import { serve } from '../../src/http/server.js'
import { HelixHome } from '../../src/shared/home.js'
import { bytesOf, testGrpc } from '../grpc/fixtures.js'
import { tempDir } from '../helpers/cli.js'
import { addModel, addToRepository } from '../helpers/onnx-models.js'

/** One span as the OTLP/HTTP JSON exporter sends it (ids in hex). */
interface OtlpSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind: number
  links?: { traceId: string; spanId: string }[]
  attributes?: { key: string; value: Record<string, unknown> }[]
}

/** A local OTLP/HTTP collector: decodes every POST to /v1/traces and keeps its spans. */
class OtlpReceiver {
  spans: OtlpSpan[] = []
  services = new Set<string>()
  contentTypes = new Set<string>()
  posts = 0
  private server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end()
        return
      }
      this.posts++
      this.contentTypes.add(String(req.headers['content-type']))
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans: {
          resource: { attributes: { key: string; value: { stringValue?: string } }[] }
          scopeSpans: { spans: OtlpSpan[] }[]
        }[]
      }
      for (const rs of body.resourceSpans) {
        for (const a of rs.resource.attributes)
          if (a.key === 'service.name') this.services.add(String(a.value.stringValue))
        for (const ss of rs.scopeSpans) this.spans.push(...ss.spans)
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1/traces`
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}

const body = (k: number) =>
  JSON.stringify({
    inputs: [
      { name: 'a', datatype: 'FP32', shape: [1, 4], data: [k, k, k, k] },
      { name: 'b', datatype: 'FP32', shape: [1, 4], data: [1, 1, 1, 1] },
    ],
  })

async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > until) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Runs `helix serve` in this process on a helix directory until `work` is done, then stops it. */
async function withDaemon(
  home: string,
  logFile: string,
  work: (url: string) => Promise<void>,
): Promise<void> {
  const fd = openSync(logFile, 'w')
  let url = ''
  const running = serve(
    new HelixHome(home),
    { port: 0, logLevel: 'info', auth: false },
    { onListening: (u) => (url = u), signals: ['SIGUSR2'], logDestination: fd },
  )
  try {
    await waitFor(async () => {
      if (url === '') return false
      const res = await request(`${url}/v2/health/ready`)
      await res.body.dump()
      return res.statusCode === 200
    })
    await work(url)
  } finally {
    process.emit('SIGUSR2', 'SIGUSR2')
    await running
    closeSync(fd)
  }
}

const infer = async (url: string, k: number, headers: Record<string, string> = {}) => {
  const res = await request(`${url}/v2/models/add/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: body(k),
  })
  expect(res.statusCode).toBe(200)
  await res.body.dump()
  return res.headers
}

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const CALLER_SPAN = '00f067aa0ba902b7'

describe('tracing (OpenTelemetry over OTLP/HTTP to a local receiver)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  const receiver = new OtlpReceiver()
  let endpoint: string

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('helix-tracing-'))
    // Batches of up to 8 gathered for 300 ms: two concurrent requests share one.
    await addToRepository(join(dir, 'models'), 'add', addModel(), {
      config: { max_batch_size: 8, max_queue_delay_ms: 300 },
    })
    endpoint = await receiver.start()
  })

  afterAll(async () => {
    await receiver.close()
    await cleanup()
  })

  it('exports a span tree per request, honours and returns traceparent, and links a batch to every request it served', async () => {
    await writeFile(
      join(dir, 'helix.yaml'),
      `models:\n  device: cpu\nlogging:\n  format: json\n  requests: all\ntracing:\n  enabled: true\n  endpoint: ${endpoint}\n  sampling_ratio: 1\n  service_name: helix-test\n`,
    )
    const logFile = join(dir, 'serve.log')
    let returned = ''
    await withDaemon(dir, logFile, async (url) => {
      const headers = await infer(url, 1, { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` })
      returned = String(headers.traceparent)
      // Two at once: one batch serves both.
      await Promise.all([infer(url, 2), infer(url, 3)])
    })
    // The answer names the daemon's span in the caller's trace.
    expect(returned).toMatch(new RegExp(`^00-${CALLER_TRACE}-[\\da-f]{16}-01$`))
    const serverSpanId = returned.split('-')[2]

    // The shutdown flushed everything buffered.
    expect(receiver.contentTypes).toEqual(new Set(['application/json']))
    expect(receiver.services).toEqual(new Set(['helix-test']))
    const spans = receiver.spans
    const requests = spans.filter((s) => s.name === 'POST /v2/models/:model/infer')
    expect(requests).toHaveLength(3)
    const first = requests.find((s) => s.traceId === CALLER_TRACE) as OtlpSpan
    expect(first).toMatchObject({ spanId: serverSpanId, parentSpanId: CALLER_SPAN, kind: 2 })
    const childrenOf = (parent: OtlpSpan) =>
      spans.filter((s) => s.parentSpanId === parent.spanId && s.traceId === parent.traceId).map((s) => s.name)
    // auth, queue and compute under each; a batch span under the first request each batch served.
    for (const r of requests)
      expect(
        childrenOf(r)
          .filter((n) => n !== 'batch')
          .sort(),
      ).toEqual(['auth', 'compute', 'queue'])

    // The two concurrent requests: new traces of their own, served by one batch that links both.
    const concurrent = requests.filter((s) => s !== first)
    expect(new Set(concurrent.map((s) => s.traceId)).size).toBe(2)
    const batches = spans.filter((s) => s.name === 'batch')
    const shared = batches.find((b) => (b.links ?? []).length === 2)
    expect(shared).toBeDefined()
    expect((shared?.links ?? []).map((l) => `${l.traceId}/${l.spanId}`).sort()).toEqual(
      concurrent.map((s) => `${s.traceId}/${s.spanId}`).sort(),
    )
    expect(shared?.attributes).toEqual(
      expect.arrayContaining([
        { key: 'helix.batch_size', value: { intValue: 2 } },
        { key: 'helix.model', value: { stringValue: 'add' } },
        { key: 'helix.model_version', value: { stringValue: '1' } },
      ]),
    )
    // The batch span sits in the trace of the first request it served.
    expect(concurrent.some((s) => s.traceId === shared?.traceId && s.spanId === shared?.parentSpanId)).toBe(
      true,
    )

    // Request log lines carry the ids of their trace.
    const lines = (await readFile(logFile, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
    const completed = lines.filter(
      (l) => l.msg === 'request completed' && String((l.req as { url: string }).url).includes('/infer'),
    )
    expect(completed).toHaveLength(3)
    expect(completed.find((l) => l.trace_id === CALLER_TRACE)).toMatchObject({ span_id: serverSpanId })
    for (const l of completed) {
      expect(requests.some((s) => s.traceId === l.trace_id && s.spanId === l.span_id)).toBe(true)
    }
  })

  it('exports nothing at sampling_ratio 0, and still logs a caller trace id with tracing off', async () => {
    receiver.spans = []
    receiver.posts = 0
    await writeFile(
      join(dir, 'helix.yaml'),
      `models:\n  device: cpu\nlogging:\n  format: json\n  requests: all\ntracing:\n  enabled: true\n  endpoint: ${endpoint}\n  sampling_ratio: 0\n`,
    )
    await withDaemon(dir, join(dir, 'zero.log'), async (url) => {
      const headers = await infer(url, 1)
      // Not sampled: the returned traceparent says so.
      expect(String(headers.traceparent)).toMatch(/^00-[\da-f]{32}-[\da-f]{16}-00$/)
      await Promise.all([infer(url, 2), infer(url, 3)])
    })
    expect(receiver.spans).toEqual([])

    // Tracing off (the default): no span, no traceparent header, but the caller's trace id is logged.
    await writeFile(
      join(dir, 'helix.yaml'),
      'models:\n  device: cpu\nlogging:\n  format: json\n  requests: all\n',
    )
    const logFile = join(dir, 'off.log')
    await withDaemon(dir, logFile, async (url) => {
      const headers = await infer(url, 1, { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` })
      expect(headers.traceparent).toBeUndefined()
    })
    expect(receiver.posts).toBe(0)
    const completed = (await readFile(logFile, 'utf8'))
      .split('\n')
      .filter((l) => l.includes('"request completed"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => String((l.req as { url: string }).url).includes('/infer'))
    expect(completed).toEqual([expect.objectContaining({ trace_id: CALLER_TRACE, span_id: CALLER_SPAN })])
  })

  it('refuses bad tracing settings with a clear error', async () => {
    const home = new HelixHome(dir)
    for (const [yaml, key] of [
      ['tracing:\n  sampling_ratio: 1.5\n', 'tracing.sampling_ratio'],
      ['tracing:\n  endpoint: localhost:4318\n', 'tracing.endpoint'],
      ['tracing:\n  enabled: yes please\n', 'tracing.enabled'],
      ['tracing:\n  exporter: zipkin\n', 'tracing'],
    ]) {
      await writeFile(join(dir, 'helix.yaml'), yaml)
      await expect(loadRuntimeConfig(home, {}, {})).rejects.toMatchObject({
        code: 'CONFIG_INVALID',
        message: expect.stringContaining(key),
      })
    }
    // Past the schema's pattern, yet no URL: refused when tracing starts, the URL not echoed.
    await expect(
      startTracing(
        { enabled: true, endpoint: 'http://[secret', sampling_ratio: 1, service_name: 'helix' },
        silentLogger,
      ),
    ).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.not.stringContaining('secret') })
  })

  it('traces a gRPC ModelInfer call under the caller traceparent metadata and returns its own', async () => {
    receiver.spans = []
    const tracing = await startTracing(
      { enabled: true, endpoint, sampling_ratio: 1, service_name: 'helix' },
      silentLogger,
    )
    const t = await testGrpc()
    let returned: unknown
    try {
      const metadata = new Metadata()
      metadata.set('traceparent', `00-${CALLER_TRACE}-${CALLER_SPAN}-01`)
      const raw = t.inference.raw.ModelInfer as (
        req: unknown,
        md: Metadata,
        opts: object,
        cb: (err: Error | null) => void,
      ) => { on(event: 'metadata', listener: (md: Metadata) => void): void }
      await new Promise<void>((resolve, reject) => {
        const call = raw.call(
          t.inference.raw,
          {
            model_name: 'add',
            inputs: [
              { name: 'a', datatype: 'FP32', shape: [1, 4] },
              { name: 'b', datatype: 'FP32', shape: [1, 4] },
            ],
            raw_input_contents: [bytesOf(new Float32Array([1, 2, 3, 4])), bytesOf(new Float32Array(4))],
          },
          metadata,
          {},
          (err) => (err ? reject(err) : resolve()),
        )
        call.on('metadata', (md) => {
          returned = md.get('traceparent')[0]
        })
      })
    } finally {
      await t.close()
      await tracing.shutdown()
    }
    expect(String(returned)).toMatch(new RegExp(`^00-${CALLER_TRACE}-[\\da-f]{16}-01$`))
    const server = receiver.spans.find((s) => s.parentSpanId === CALLER_SPAN) as OtlpSpan
    expect(server).toMatchObject({ traceId: CALLER_TRACE, spanId: String(returned).split('-')[2], kind: 2 })
    const children = receiver.spans.filter((s) => s.parentSpanId === server.spanId).map((s) => s.name)
    expect(children.sort()).toEqual(['batch', 'compute', 'queue'])
  })

  it('traces a gRPC ModelStreamInfer stream as one span with each message inference under it', async () => {
    receiver.spans = []
    const tracing = await startTracing(
      { enabled: true, endpoint, sampling_ratio: 1, service_name: 'helix' },
      silentLogger,
    )
    const t = await testGrpc()
    let returned: unknown
    try {
      const metadata = new Metadata()
      metadata.set('traceparent', `00-${CALLER_TRACE}-${CALLER_SPAN}-01`)
      const stream = t.inference.stream<unknown, { error_message?: string }>('ModelStreamInfer', metadata)
      stream.on('metadata', (md: Metadata) => {
        returned = md.get('traceparent')[0]
      })
      const answers: { error_message?: string }[] = []
      const done = new Promise<void>((resolve, reject) => {
        stream.on('data', (answer: { error_message?: string }) => {
          answers.push(answer)
          if (answers.length === 2) stream.end()
        })
        stream.on('end', resolve)
        stream.on('error', reject)
      })
      for (const k of [1, 2])
        stream.write({
          model_name: 'add',
          inputs: [
            { name: 'a', datatype: 'FP32', shape: [1, 4] },
            { name: 'b', datatype: 'FP32', shape: [1, 4] },
          ],
          raw_input_contents: [bytesOf(new Float32Array([k, k, k, k])), bytesOf(new Float32Array(4))],
        })
      await done
      expect(answers.map((a) => a.error_message ?? '')).toEqual(['', ''])
    } finally {
      await t.close()
      await tracing.shutdown()
    }
    expect(String(returned)).toMatch(new RegExp(`^00-${CALLER_TRACE}-[\\da-f]{16}-01$`))
    const server = receiver.spans.find((s) => s.parentSpanId === CALLER_SPAN) as OtlpSpan
    expect(server).toMatchObject({ traceId: CALLER_TRACE, spanId: String(returned).split('-')[2], kind: 2 })
    const children = receiver.spans.filter((s) => s.parentSpanId === server.spanId).map((s) => s.name)
    expect(children.filter((n) => n === 'compute')).toHaveLength(2)
    expect(children.filter((n) => n === 'queue')).toHaveLength(2)
  })
})
