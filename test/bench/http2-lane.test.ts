import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { frameMessage, GrpcUnaryChannel } from '../../src/bench/grpc-lane.js'
import { runStep } from '../../src/bench/run-step.js'
import { grpcPlan } from '../../src/bench/targets/grpc.js'
import { inferenceMethods } from '../../src/bench/targets/grpc-protos.js'
import { type TestGrpc, testGrpc } from '../grpc/fixtures.js'
import { tempDir } from '../helpers/cli.js'
import { writeSelfSignedCerts } from '../provision/render/self-signed.js'
import { type FakeGrpcServer, options, startFakeGrpc, grpcStep as step } from './grpc-servers.js'

const MODEL_INFER = '/inference.GRPCInferenceService/ModelInfer'

/** A framed ModelInferRequest for the test server's model "m": `rows` × 4 FP32 (16 bytes a row). */
function inferRequest(rows: number): { framed: Buffer; raw: Buffer } {
  const raw = Buffer.alloc(rows * 16)
  for (let i = 0; i < raw.length; i += 4) raw.writeFloatLE(i, i)
  const message = inferenceMethods().ModelInfer.requestSerialize({
    model_name: 'm',
    id: 'lane',
    inputs: [{ name: 'x', datatype: 'FP32', shape: [rows, 4] }],
    raw_input_contents: [raw],
  })
  return { framed: frameMessage(message), raw }
}

interface Ended {
  /** Header blocks as [name, value] pairs: the response headers, then the trailers. */
  blocks: [string, string][][]
  data: Buffer
  error?: string
}

/** One call on the channel, everything the lane reported about it. */
function call(channel: GrpcUnaryChannel): Promise<Ended> {
  return new Promise((resolve) => {
    const blocks: [string, string][][] = []
    const chunks: Buffer[] = []
    channel.call({
      onHeaders(fields) {
        const block: [string, string][] = []
        for (let i = 0; i < fields.length; i += 2) block.push([fields[i], fields[i + 1]])
        blocks.push(block)
      },
      onData: (data) => chunks.push(Buffer.from(data)),
      onClose: (error) => resolve({ blocks, data: Buffer.concat(chunks), error }),
    })
  })
}

const header = (ended: Ended, name: string) => ended.blocks.flat().find(([n]) => n === name)?.[1]

/** The raw output of an answered call (the test server echoes the input). */
function answerRaw(ended: Ended): Buffer {
  expect(ended.error).toBeUndefined()
  expect(header(ended, ':status')).toBe('200')
  expect(header(ended, 'grpc-status')).toBe('0')
  expect(ended.data.readUInt32BE(1)).toBe(ended.data.length - 5)
  return inferenceMethods().ModelInfer.responseDeserialize(ended.data.subarray(5)).raw_output_contents[0]
}

/** `loops` closed loops of calls until `ms` have passed; the outcome of each call, in order. */
async function load(channel: GrpcUnaryChannel, loops: number, ms: number): Promise<Ended[]> {
  const until = Date.now() + ms
  const ended: Ended[] = []
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (Date.now() < until) ended.push(await call(channel))
    }),
  )
  return ended
}

/** Error kinds of the calls, counted (undefined: grpc-status 0). */
function outcomes(ended: Ended[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const e of ended) {
    const key = e.error ?? `grpc-status ${header(e, 'grpc-status')}`
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}

describe('Http2Lane: unary gRPC calls over a raw socket to grpc-js servers', () => {
  const servers: FakeGrpcServer[] = []
  const channels: GrpcUnaryChannel[] = []
  const start = async (o: Parameters<typeof startFakeGrpc>[0] = {}) => {
    const s = await startFakeGrpc(o)
    servers.push(s)
    return s
  }
  const channel = (
    target: string,
    framed: Buffer,
    metadata: Record<string, string> = {},
    maxStreamId?: number,
  ) => {
    const c = new GrpcUnaryChannel(target, undefined, { path: MODEL_INFER, metadata, framed }, maxStreamId)
    channels.push(c)
    return c
  }
  afterAll(async () => {
    for (const c of channels) c.close()
    await Promise.all(servers.map((s) => s.close()))
  })

  it('sends 110 KB requests through the 64 KB windows of a grpc-js server and reads 110 KB answers', async () => {
    // A plain grpc-js server keeps Node's HTTP/2 windows (65,535 bytes per stream and connection): a
    // request's body waits for WINDOW_UPDATE, and 16 requests share the connection's window.
    const server = await start()
    const { framed, raw } = inferRequest(6875)
    expect(framed.length).toBeGreaterThan(110_000)
    const c = channel(server.target, framed)
    const answers = await Promise.all(Array.from({ length: 16 }, () => call(c)))
    for (const answer of answers) expect(answerRaw(answer).equals(raw)).toBe(true)
    // Again on the same connection, whose windows have been used up and given back.
    expect(answerRaw(await call(c)).equals(raw)).toBe(true)
    expect(c.connections).toBe(1)
    expect(server.answered()).toBe(17)
  })

  it('a call refused at once ends with :status, grpc-status and grpc-message in one header block', async () => {
    const server = await start({ key: 'hx_right' })
    const { framed } = inferRequest(1)
    const refused = await call(channel(server.target, framed, { authorization: 'Bearer hx_wrong' }))
    expect(refused.error).toBeUndefined()
    expect(refused.data.length).toBe(0)
    expect(refused.blocks).toHaveLength(1)
    expect(header(refused, ':status')).toBe('200')
    expect(header(refused, 'grpc-status')).toBe('16')
    // grpc-message is percent-encoded on the wire.
    expect(header(refused, 'grpc-message')).toBe('Invalid%20credentials.')
    // Through helix bench's load client, the same call is an error of that status.
    const { plan } = await grpcPlan(options({ url: server.target, key: 'hx_right' }))
    const result = await runStep({ ...plan, metadata: { authorization: 'Bearer hx_wrong' } }, step())
    expect(result).toMatchObject({ successes: 0, errors: { 'grpc UNAUTHENTICATED': 20 } })
    expect(server.lastMetadata()).toMatchObject({
      authorization: 'Bearer hx_wrong',
      'user-agent': 'helix-bench',
    })
  })

  it('carries hundreds of concurrent calls on one connection, within SETTINGS_MAX_CONCURRENT_STREAMS', async () => {
    const { framed, raw } = inferRequest(4)
    const open = channel((await start()).target, framed)
    const many = await Promise.all(Array.from({ length: 400 }, () => call(open)))
    for (const answer of many) expect(answerRaw(answer).equals(raw)).toBe(true)
    expect(open.connections).toBe(1)
    // A server that takes 4 streams at a time: the rest wait on the lane. Those sent before its SETTINGS
    // arrived and refused (RST_STREAM REFUSED_STREAM) are sent again.
    const limited = await start({ serverOptions: { 'grpc.max_concurrent_streams': 4 } })
    const four = channel(limited.target, framed)
    const queued = await Promise.all(Array.from({ length: 60 }, () => call(four)))
    expect(outcomes(queued)).toEqual({ 'grpc-status 0': 60 })
    expect(four.connections).toBe(1)
  })

  it('opens a new connection before the stream ids run out', async () => {
    const { framed } = inferRequest(1)
    // Stream ids 1, 3, … 21: 11 calls a connection.
    const c = channel((await start()).target, framed, {}, 21)
    const ended = await load(c, 8, 300)
    expect(ended.length).toBeGreaterThan(30)
    expect(outcomes(ended)).toEqual({ 'grpc-status 0': ended.length })
    expect(c.connections).toBe(Math.ceil(ended.length / 11))
  })

  it('GOAWAY: calls in flight finish on the old connection; new calls, and those it did not process, go to a new one', async () => {
    // grpc-js sends GOAWAY to a connection older than max_connection_age and closes it after the grace.
    const server = await start({
      serverOptions: { 'grpc.max_connection_age_ms': 100, 'grpc.max_connection_age_grace_ms': 5000 },
    })
    const { framed } = inferRequest(64)
    const c = channel(server.target, framed)
    const ended = await load(c, 8, 800)
    expect(outcomes(ended)).toEqual({ 'grpc-status 0': ended.length })
    expect(c.connections).toBeGreaterThanOrEqual(3)
  })

  it('a server that goes away mid-load fails the calls in flight with a clear kind, then ECONNREFUSED', async () => {
    const server = await start()
    const { framed } = inferRequest(64)
    const c = channel(server.target, framed)
    setTimeout(() => server.close(), 150)
    const ended = await load(c, 8, 500)
    const kinds = outcomes(ended)
    expect(kinds['grpc-status 0']).toBeGreaterThan(0)
    expect(kinds.ECONNREFUSED).toBeGreaterThan(0)
    for (const kind of Object.keys(kinds))
      expect(kind).toMatch(
        /^(grpc-status 0|ECONNREFUSED|socket closed|ECONNRESET|GOAWAY \w+|stream reset \(\w+\))$/,
      )
    expect(c.lastError?.message).toMatch(/ECONNREFUSED/)
  })

  it('an HTTP/1.1 server is not HTTP/2: the calls fail saying so', async () => {
    const http1 = createServer((_, res) => res.end())
    await new Promise<void>((resolve) => http1.listen(0, '127.0.0.1', resolve))
    try {
      const { framed } = inferRequest(1)
      const c = channel(`127.0.0.1:${(http1.address() as AddressInfo).port}`, framed)
      expect((await call(c)).error).toBe('not HTTP/2')
      expect(c.lastError?.message).toMatch(/^the server answered in HTTP\/1: HTTP\/1\.1 400/)
    } finally {
      http1.closeAllConnections()
      await new Promise((resolve) => http1.close(resolve))
    }
  })
})

describe("Http2Lane over TLS to the daemon's gRPC face", () => {
  let t: TestGrpc
  let tmp: { dir: string; cleanup: () => Promise<void> }
  let ca: string
  beforeAll(async () => {
    tmp = await tempDir('helix-bench-h2-tls-')
    await writeSelfSignedCerts(tmp.dir)
    const read = (name: string) => readFile(join(tmp.dir, name))
    ca = (await read('ca.crt')).toString()
    t = await testGrpc({
      tls: { cert: await read('server.crt'), key: await read('server.key'), mtls: false },
    })
  }, 60_000)
  afterAll(async () => {
    await t?.close()
    await tmp?.cleanup()
  })

  it('verifies the certificate against the CA given, checks every answer, and refuses an untrusted one', async () => {
    const { plan } = await grpcPlan(
      options({
        url: `grpcs://${t.server.target}`,
        model: 'cls',
        shapes: { x: [1, 3, 48, 192] },
        tls: { ca: [ca] },
      }),
    )
    const ok = await runStep(plan, step({ load: { mode: 'closed', concurrency: 8 }, stop: { requests: 40 } }))
    expect(ok).toMatchObject({ successes: 40, errorCount: 0, checkedAnswers: 40 })
    // Node's default roots do not hold the self-signed certificate.
    const untrusted = await runStep({ ...plan, tls: {} }, step())
    expect(untrusted.successes).toBe(0)
    expect(Object.keys(untrusted.errors)).toEqual(['DEPTH_ZERO_SELF_SIGNED_CERT'])
  })
})
