import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'

/**
 * Real HTTP servers on loopback for driving `helix bench`: the protocol shapes it speaks (KServe v2,
 * OpenAI streaming, plain echo), with knobs to inject a slowdown or a failure.
 */
export interface TestServer {
  app: FastifyInstance
  url: string
  /** Requests seen, by path. */
  hits: Map<string, number>
  /** Most requests in flight at once. */
  maxInFlight: () => number
  /** Arrival times (ms, performance.now) of requests to /echo. */
  arrivals: number[]
  close: () => Promise<void>
}

export interface ServerOptions {
  /** Delay every response by this many milliseconds (an injected slowdown). */
  delayMs?: number
  /** Status for KServe metadata and infer (401 for a bad key, 404 for an unknown model…). */
  status?: number
  /** Required bearer token; other requests get 401. */
  key?: string
  /** Serve HTTPS with this PEM key and certificate. */
  https?: { key: string; cert: string }
}

export async function startServer(options: ServerOptions = {}): Promise<TestServer> {
  // One instance type for both: the HTTPS and HTTP instances differ only in their raw server type.
  const app = (options.https ? Fastify({ https: options.https }) : Fastify()) as unknown as FastifyInstance
  const hits = new Map<string, number>()
  const arrivals: number[] = []
  let inFlight = 0
  let maxInFlight = 0
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0]
    hits.set(path, (hits.get(path) ?? 0) + 1)
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    if (options.key && req.headers.authorization !== `Bearer ${options.key}`) {
      return reply.code(401).send({ error: 'invalid API key' })
    }
    if (options.status) return reply.code(options.status).send({ error: `status ${options.status} injected` })
    if (options.delayMs) await sleep(options.delayMs)
  })
  app.addHook('onResponse', async () => {
    inFlight--
  })
  app.all('/echo', async (req) => {
    arrivals.push(performance.now())
    return req.body ?? { ok: true }
  })
  app.get('/v2/models/m', async () => ({
    name: 'm',
    versions: ['1'],
    platform: 'onnxruntime_onnx',
    inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 4] }],
    outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 4] }],
    max_batch_size: 3,
  }))
  // The model_repository extension: 'm' loads (but keeps reporting max_batch_size 3), others fail.
  app.post('/v2/repository/models/:model/load', async (req, reply) => {
    const { model } = req.params as { model: string }
    return model === 'm' ? {} : reply.code(400).send({ error: `cannot load ${model}` })
  })
  app.get('/v2/models/:model/ready', async () => ({}))
  app.get('/v2/models/dyn', async () => ({
    name: 'dyn',
    versions: ['1'],
    platform: 'onnxruntime_onnx',
    inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3, -1] }],
    outputs: [],
  }))
  app.post('/v2/models/:model/infer', async (req, reply) => {
    const binary = req.headers['inference-header-content-length']
    const header = binary
      ? JSON.parse((req.body as Buffer).subarray(0, Number(binary)).toString())
      : (req.body as { inputs?: unknown[] })
    if (!Array.isArray(header.inputs) || header.inputs.length === 0)
      return reply.code(400).send({ error: 'missing inputs' })
    reply.header('server-timing', 'queue;dur=0.250, compute;dur=1.500')
    return { model_name: 'm', model_version: '1', outputs: [] }
  })
  app.post('/v1/chat/completions', async (_req, reply) => {
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
    const chunk = (delta: object) =>
      `data: ${JSON.stringify({ object: 'chat.completion.chunk', choices: [{ index: 0, delta }] })}\n\n`
    reply.raw.write(chunk({ role: 'assistant' }))
    for (const word of ['Waves', ' rise', ' and', ' fall']) {
      await sleep(5)
      reply.raw.write(chunk({ content: word }))
    }
    reply.raw.end('data: [DONE]\n\n')
  })
  app.post('/v1/embeddings', async () => ({
    object: 'list',
    data: [{ object: 'embedding', index: 0, embedding: [0.1, 0.2] }],
  }))
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, url, hits, arrivals, maxInFlight: () => maxInFlight, close: () => app.close() }
}
