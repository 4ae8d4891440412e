import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildPlan } from '../../../src/bench/targets/build-plan.js'
import { serverMessage } from '../../../src/bench/targets/preflight.js'
import type { TargetOptions } from '../../../src/bench/targets/target-options.js'
import { tempDir } from '../../helpers/cli.js'
import { startServer, type TestServer } from '../servers.js'

const base = (over: Partial<TargetOptions>): TargetOptions => ({
  kind: 'kserve',
  url: '',
  binary: false,
  shapes: {},
  headers: {},
  maxTokens: 16,
  ...over,
})

describe('buildPlan', () => {
  let server: TestServer
  let tmp: { dir: string; cleanup: () => Promise<void> }
  beforeAll(async () => {
    server = await startServer()
    tmp = await tempDir()
  })
  afterAll(async () => {
    await server.close()
    await tmp.cleanup()
  })

  it('builds a KServe JSON request from metadata and probes it once', async () => {
    const before = server.hits.get('/v2/models/m/infer') ?? 0
    const { plan, metadata } = await buildPlan(
      base({ url: server.url, model: 'm', key: 'k1', headers: { 'x-extra': '1' } }),
    )
    expect(metadata?.inputs[0].name).toBe('x')
    expect(plan.path).toBe('/v2/models/m/infer')
    expect(plan.headers).toMatchObject({
      authorization: 'Bearer k1',
      'content-type': 'application/json',
      'x-extra': '1',
    })
    const body = JSON.parse(Buffer.from(plan.body!).toString())
    expect(body.inputs[0]).toMatchObject({ name: 'x', shape: [1, 4], datatype: 'FP32' })
    expect(server.hits.get('/v2/models/m/infer')).toBe(before + 1)
  })

  it('uses --input and the binary extension, and a version path', async () => {
    const file = join(tmp.dir, 'req.json')
    await writeFile(
      file,
      JSON.stringify({ inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] }),
    )
    await expect(
      buildPlan(base({ url: server.url, model: 'm', inputFile: file, binary: true, modelVersion: '1' })),
    ).rejects.toThrow(/not served/)
    const { plan } = await buildPlan(base({ url: server.url, model: 'm', inputFile: file, binary: true }))
    expect(plan.headers['inference-header-content-length']).toMatch(/^\d+$/)
    expect(plan.body!.length - Number(plan.headers['inference-header-content-length'])).toBe(16)
  })

  it('fails clearly: unknown model, bad key, bad body, server error, unreachable, bad URL, missing files', async () => {
    const codes = async (p: Promise<unknown>) =>
      p.then(
        () => 'ok',
        (e: { code: string; exitCode: number }) => `${e.code}/${e.exitCode}`,
      )
    expect(await codes(buildPlan(base({ url: server.url, model: 'nope' })))).toBe('MODEL_NOT_FOUND/2')
    expect(await codes(buildPlan(base({ url: server.url })))).toBe('BENCH_MODEL_REQUIRED/2')
    expect(await codes(buildPlan(base({ url: server.url, model: 'dyn' })))).toBe('BENCH_SHAPE_REQUIRED/2')
    const empty = join(tmp.dir, 'empty.json')
    await writeFile(empty, JSON.stringify({ inputs: [] }))
    expect(await codes(buildPlan(base({ url: server.url, model: 'm', inputFile: empty })))).toBe(
      'BENCH_BAD_REQUEST/2',
    )
    await writeFile(empty, JSON.stringify({ nothing: 1 }))
    expect(await codes(buildPlan(base({ url: server.url, model: 'm', inputFile: empty })))).toBe(
      'BENCH_INPUT_INVALID/2',
    )
    await writeFile(empty, '{not json')
    expect(await codes(buildPlan(base({ url: server.url, model: 'm', inputFile: empty })))).toBe(
      'BENCH_INPUT_INVALID/2',
    )
    expect(
      await codes(buildPlan(base({ url: server.url, model: 'm', inputFile: join(tmp.dir, 'missing.json') }))),
    ).toBe('BENCH_INPUT_UNREADABLE/2')
    expect(await codes(buildPlan(base({ url: 'http://127.0.0.1:1', model: 'm' })))).toBe(
      'BENCH_UNREACHABLE/1',
    )
    expect(await codes(buildPlan(base({ url: 'not a url', model: 'm' })))).toBe('BENCH_BAD_URL/2')
    expect(await codes(buildPlan(base({ url: 'ftp://x', model: 'm' })))).toBe('BENCH_BAD_URL/2')
    const locked = await startServer({ key: 'right' })
    const failing = await startServer({ status: 500 })
    try {
      expect(await codes(buildPlan(base({ url: locked.url, model: 'm', key: 'wrong' })))).toBe(
        'BENCH_UNAUTHORIZED/2',
      )
      expect(await codes(buildPlan(base({ url: locked.url, model: 'm', key: 'right' })))).toBe('ok')
      expect(await codes(buildPlan(base({ url: failing.url, model: 'm' })))).toBe('BENCH_SERVER_ERROR/1')
      expect(await codes(buildPlan(base({ kind: 'http', url: `${server.url}/missing` })))).toBe(
        'BENCH_NOT_FOUND/2',
      )
    } finally {
      await locked.close()
      await failing.close()
    }
  })

  it('builds OpenAI embeddings and streaming chat requests', async () => {
    const chat = await buildPlan(base({ kind: 'openai-chat', url: server.url, model: 'llm', prompt: 'hi' }))
    expect(chat.plan).toMatchObject({ path: '/v1/chat/completions', stream: 'sse' })
    expect(JSON.parse(Buffer.from(chat.plan.body!).toString())).toMatchObject({
      model: 'llm',
      stream: true,
      max_tokens: 16,
    })
    const emb = await buildPlan(
      base({ kind: 'openai-embeddings', url: `${server.url}/v1/embeddings`, model: 'e' }),
    )
    expect(emb.plan).toMatchObject({ path: '/v1/embeddings', stream: 'none' })
    await expect(buildPlan(base({ kind: 'openai-chat', url: server.url }))).rejects.toThrow(
      /--model is required/,
    )
  })

  it('sends any URL with a body, @file or a recorded request', async () => {
    const plain = await buildPlan(base({ kind: 'http', url: `${server.url}/echo?x=1` }))
    expect(plain.plan).toMatchObject({ method: 'GET', path: '/echo?x=1' })
    expect(plain.plan.body).toBeUndefined()
    const text = await buildPlan(
      base({ kind: 'http', url: `${server.url}/echo`, body: 'hello', method: 'put' }),
    )
    expect(text.plan).toMatchObject({ method: 'PUT', headers: { 'content-type': 'text/plain' } })
    const file = join(tmp.dir, 'body.json')
    await writeFile(file, '{"a":1}')
    const fromFile = await buildPlan(base({ kind: 'http', url: `${server.url}/echo`, body: `@${file}` }))
    expect(fromFile.plan).toMatchObject({ method: 'POST', headers: { 'content-type': 'application/json' } })
    const recorded = join(tmp.dir, 'recorded.json')
    await writeFile(
      recorded,
      JSON.stringify({
        method: 'POST',
        path: '/echo',
        headers: { 'Content-Type': 'application/json', 'X-A': 'b' },
        body: { q: 1 },
      }),
    )
    const rec = await buildPlan(base({ kind: 'http', url: server.url, recorded }))
    expect(rec.plan).toMatchObject({
      method: 'POST',
      path: '/echo',
      headers: { 'content-type': 'application/json', 'x-a': 'b' },
    })
    expect(Buffer.from(rec.plan.body!).toString()).toBe('{"q":1}')
    await writeFile(recorded, JSON.stringify({ url: `${server.url}/echo`, body: 'raw' }))
    expect(
      Buffer.from(
        (await buildPlan(base({ kind: 'http', url: 'http://unused', recorded }))).plan.body!,
      ).toString(),
    ).toBe('raw')
    await expect(
      buildPlan(base({ kind: 'http', url: `${server.url}/echo`, body: 'x', method: 'GET' })),
    ).rejects.toThrow(/cannot carry a body/)
  })

  it('extracts the server message from KServe, OpenAI and plain errors', () => {
    expect(serverMessage('{"error":"bad shape"}')).toBe('bad shape')
    expect(serverMessage('{"error":{"message":"no such model"}}')).toBe('no such model')
    expect(serverMessage('{"message":"m"}')).toBe('m')
    expect(serverMessage('{"other":1}')).toBe('{"other":1}')
    expect(serverMessage('<html>\nboom')).toBe('<html>')
  })
})
