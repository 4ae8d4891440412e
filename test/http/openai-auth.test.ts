import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI_ACTOR, createKey } from '../../src/core/identity/api-keys.js'
import { BusinessMetrics } from '../../src/core/monitoring/business-metrics.js'
import {
  bearer,
  type Daemon,
  daemon,
  type IdentityWorld,
  identityWorld,
} from '../core/identity/identity-harness.js'
import { textRepository } from './openai-fixtures.js'

const CHAT = [{ role: 'user', content: 'Hello there, who are you?' }]

let world: IdentityWorld
let d: Daemon
const keys = {} as Record<
  'admin' | 'infer' | 'chatOnly' | 'metricsOnly' | 'limited',
  { id: string; key: string }
>

beforeAll(async () => {
  world = await identityWorld()
  // The text models live beside the world's tensor models (add, other).
  await textRepository({ modelsDir: world.database.home.modelsDir })
  d = await daemon(world)
  const make = (name: string, scopes: string[], rateLimitPerMin?: number) =>
    createKey(d.identity.deps, CLI_ACTOR, { name, scopes, ...(rateLimitPerMin ? { rateLimitPerMin } : {}) })
  keys.admin = await make('admin', ['admin'])
  keys.infer = await make('infer', ['infer'])
  keys.chatOnly = await make('chat-only', ['infer:chat'])
  keys.metricsOnly = await make('scraper', ['metrics'])
  keys.limited = await make('limited', ['infer'], 2)
}, 240_000)
afterAll(async () => {
  await d?.close()
  await world?.teardown()
})

const get = (url: string, key?: string) =>
  d.app.inject({ method: 'GET', url, ...(key ? { headers: bearer(key) } : {}) })
const post = (url: string, payload: object, key?: string) =>
  d.app.inject({ method: 'POST', url, payload, ...(key ? { headers: bearer(key) } : {}) })
const chat = (key: string | undefined, body: object = {}) =>
  post('/v1/chat/completions', { model: 'chat', messages: CHAT, max_tokens: 2, temperature: 0, ...body }, key)

function expectOpenAIError(
  res: { statusCode: number; json(): { error: unknown } },
  status: number,
  error: object,
) {
  expect(res.statusCode).toBe(status)
  expect(res.json().error).toMatchObject(error)
}

describe('/v1 behind authentication, scopes and limits', () => {
  it('no or a bad credential: 401 authentication_error with WWW-Authenticate', async () => {
    for (const res of [await get('/v1/models'), await chat(undefined), await get('/v1/models', 'hx_nope')]) {
      expectOpenAIError(res, 401, { type: 'authentication_error', code: 'invalid_api_key', param: null })
      expect(res.headers['www-authenticate']).toContain('Bearer realm="helix"')
    }
  })

  it('a credential without an infer scope: 403 permission_error on every /v1 route', async () => {
    const key = keys.metricsOnly.key
    expectOpenAIError(await get('/v1/models', key), 403, { type: 'permission_error' })
    expectOpenAIError(await chat(key), 403, { type: 'permission_error', code: 'insufficient_permissions' })
    expectOpenAIError(await post('/v1/embeddings', { model: 'embed', input: 'a' }, key), 403, {
      type: 'permission_error',
    })
  })

  it('infer:<model> lists and calls that model only (by name or name:version)', async () => {
    const key = keys.chatOnly.key
    const list = (await get('/v1/models', key)).json()
    expect(list.data.map((m: { id: string }) => m.id)).toEqual(['chat'])
    expect((await get('/v1/models/chat:1', key)).statusCode).toBe(200)
    expectOpenAIError(await get('/v1/models/embed', key), 404, { code: 'model_not_found' })
    expect((await chat(key)).statusCode).toBe(200)
    expect((await chat(key, { model: 'chat:1' })).statusCode).toBe(200)
    expectOpenAIError(await post('/v1/embeddings', { model: 'embed', input: 'a' }, key), 403, {
      type: 'permission_error',
      code: 'insufficient_permissions',
    })
    // KServe's generate keeps its own shape.
    const generate = await post('/v2/models/embed/generate', { text_input: 'a' }, key)
    expect(generate.statusCode).toBe(403)
    expect(typeof generate.json().error).toBe('string')
    expect(
      (await post('/v2/models/chat/generate', { text_input: 'a', parameters: { max_tokens: 1 } }, key))
        .statusCode,
    ).toBe(200)
  })

  it('infer lists every text model and never a tensor model', async () => {
    const list = (await get('/v1/models', keys.infer.key)).json()
    expect(list.data.map((m: { id: string }) => m.id)).toEqual(['chat', 'embed'])
  })

  it("a key's rate limit applies to /v1: 429 rate_limit_error with Retry-After", async () => {
    const key = keys.limited.key
    expect((await get('/v1/models', key)).statusCode).toBe(200)
    expect((await get('/v1/models', key)).statusCode).toBe(200)
    const refused = await chat(key)
    expectOpenAIError(refused, 429, { type: 'rate_limit_error', code: 'rate_limit_exceeded' })
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0)
  })

  it('validation errors keep the OpenAI shape with authentication on', async () => {
    expectOpenAIError(await post('/v1/chat/completions', { model: 'chat' }, keys.infer.key), 400, {
      param: 'messages',
      code: 'missing_required_parameter',
    })
  })

  it('per-key series count the requests and tokens of /v1 calls under the body model', async () => {
    // What `helix serve` wires (server.ts): the business series on the app's registry.
    const business = new BusinessMetrics(d.app.metrics.registry)
    business.attach(d.identity)
    d.app.metrics.onTextTokens = (keyId, model, kind, count) => business.tokens(keyId, model, kind, count)
    expect((await chat(keys.infer.key, { max_tokens: 3, ignore_eos: true })).statusCode).toBe(200)
    const id = keys.infer.id
    let text = ''
    for (let i = 0; i < 100 && !text.includes(`helix_key_requests_total{key_id="${id}",model="chat"`); i++) {
      await new Promise((r) => setTimeout(r, 20))
      text = (await get('/metrics', keys.admin.key)).body
    }
    expect(text).toMatch(
      new RegExp(`helix_key_requests_total\\{key_id="${id}",model="chat",outcome="ok"\\} 1`),
    )
    expect(text).toMatch(
      new RegExp(`helix_key_tokens_total\\{key_id="${id}",model="chat",kind="completion"\\} 3`),
    )
    expect(text).toMatch(
      new RegExp(`helix_key_tokens_total\\{key_id="${id}",model="chat",kind="prompt"\\} [1-9]`),
    )
  })

  it('the OpenAPI document describes the /v1 and generate routes from their schemas', async () => {
    const doc = (await get('/openapi.json')).json()
    for (const path of [
      '/v1/models',
      '/v1/models/{model}',
      '/v1/embeddings',
      '/v1/chat/completions',
      '/v1/completions',
      '/v2/models/{model}/generate',
      '/v2/models/{model}/generate_stream',
      '/v2/models/{model}/versions/{version}/generate',
    ]) {
      expect(doc.paths, path).toHaveProperty([path])
    }
    const chatBody = doc.paths['/v1/chat/completions'].post.requestBody.content['application/json'].schema
    expect(chatBody.required).toEqual(['model', 'messages'])
    expect(Object.keys(chatBody.properties)).toEqual(
      expect.arrayContaining(['stream', 'n', 'logprobs', 'stop']),
    )
    expect(d.app.undeclaredRoutes).toEqual([])
  })
})
