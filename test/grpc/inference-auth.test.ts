import { type ServiceError, status } from '@grpc/grpc-js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI_ACTOR, createKey } from '../../src/core/identity/api-keys.js'
import { type GrpcServer, startGrpcServer } from '../../src/grpc/server.js'
import { identitySuite } from '../core/identity/identity-harness.js'
import { bytesOf, client, floatsOf, type TestClient } from './fixtures.js'

const suite = identitySuite()
let server: GrpcServer
const keys: Record<string, string> = {}
const keyIds: Record<string, string> = {}
const clients: TestClient[] = []

function as(name: string | undefined): TestClient {
  const c = client(server.target, 'inference.GRPCInferenceService', name ? { token: keys[name] ?? name } : {})
  clients.push(c)
  return c
}

function inferRequest(model: string) {
  return {
    model_name: model,
    inputs: [
      { name: 'a', datatype: 'FP32', shape: [1, 4] },
      { name: 'b', datatype: 'FP32', shape: [1, 4] },
    ],
    raw_input_contents: [
      bytesOf(new Float32Array([1, 2, 3, 4])),
      bytesOf(new Float32Array([10, 20, 30, 40])),
    ],
  }
}

beforeAll(async () => {
  const { identity, service } = suite.d
  server = await startGrpcServer(
    { host: '127.0.0.1', port: 0, maxMessageBytes: 1 << 24 },
    { service, identity, logger: { debug() {}, info() {}, warn() {}, error() {} } },
  )
  const make = async (name: string, scopes: string[], extra: { rateLimitPerMin?: number } = {}) => {
    const created = await createKey(identity.deps, CLI_ACTOR, { name, scopes, ...extra })
    keys[name] = created.key
    keyIds[name] = created.id
  }
  await make('infer-add', ['infer:add'])
  await make('reader', ['models:read'])
  await make('operator', ['models:admin'])
  await make('limited', ['infer'], { rateLimitPerMin: 3 })
}, 60_000)
afterAll(async () => {
  for (const c of clients) c.close()
  await server?.shutdown(1000)
})

describe('gRPC calls are authenticated and authorised like their REST twins', () => {
  it('ServerLive and ServerReady are public (auth.public_routes covers /v2/health/*); the rest need a credential', async () => {
    const anonymous = as(undefined)
    expect(await anonymous.call('ServerLive')).toEqual({ live: true })
    expect(await anonymous.call('ServerReady')).toEqual({ ready: true })
    for (const [method, request] of [
      ['ModelInfer', inferRequest('add')],
      ['ServerMetadata', {}],
      ['ModelMetadata', { name: 'add' }],
      ['RepositoryIndex', {}],
    ] as const) {
      const err = await anonymous.failure(method, request)
      expect(err.code, method).toBe(status.UNAUTHENTICATED)
      expect(err.details).toMatch(/needs credentials: send Authorization: Bearer/)
    }
  })

  it('a bad or revoked-looking key gets UNAUTHENTICATED with the same message as REST', async () => {
    const err = await as('hx_notarealkey0000000000000000000').failure('ModelInfer', inferRequest('add'))
    expect(err.code).toBe(status.UNAUTHENTICATED)
    expect(err.details).toBe('Invalid credentials.')
    expect(err.metadata.get('helix-error-code')).toEqual(['UNAUTHENTICATED'])
  })

  it('an infer:add key runs add and reads its metadata, and is refused other models and admin calls', async () => {
    const c = as('infer-add')
    const answer = await c.call<{ raw_output_contents: Buffer[] }>('ModelInfer', inferRequest('add'))
    expect(floatsOf(answer.raw_output_contents[0])).toEqual([11, 22, 33, 44])
    expect(await c.call('ModelMetadata', { name: 'add' })).toMatchObject({ name: 'add' })
    const other = await c.failure('ModelInfer', inferRequest('other'))
    expect(other.code).toBe(status.PERMISSION_DENIED)
    expect(other.details).toBe('This credential lacks the infer scope for model other.')
    const meta = await c.failure('ModelMetadata', { name: 'other' })
    expect(meta.code).toBe(status.PERMISSION_DENIED)
    const load = await c.failure('RepositoryModelLoad', { model_name: 'add' })
    expect(load.code).toBe(status.PERMISSION_DENIED)
    expect(load.details).toBe('This credential lacks the models:admin scope.')
  })

  it('models:read reads everything and runs nothing; models:admin unloads and loads, and each is audited', async () => {
    const reader = as('reader')
    expect(await reader.call('ModelMetadata', { name: 'other' })).toMatchObject({ name: 'other' })
    expect((await reader.failure('ModelInfer', inferRequest('add'))).code).toBe(status.PERMISSION_DENIED)
    const operator = as('operator')
    expect(await operator.call('RepositoryModelUnload', { model_name: 'other' })).toEqual({
      model_name: 'other',
      isUnloaded: true,
    })
    // A Triton client names the model in field 2 and its repository in field 1.
    expect(
      await operator.call('RepositoryModelLoad', { model_name: 'models', triton_model_name: 'other' }),
    ).toEqual({ model_name: 'other', isLoaded: true })
    await expect
      .poll(async () => {
        const { rows } = await suite.world.db.query<{ action: string; actor: string; target: string }>(
          `SELECT action, actor, target FROM audit_log WHERE actor = $1 ORDER BY at`,
          [`apikey:${keyIds.operator}`],
        )
        return rows
      })
      .toEqual([
        { action: 'model.unload', actor: `apikey:${keyIds.operator}`, target: 'model:other' },
        { action: 'model.load', actor: `apikey:${keyIds.operator}`, target: 'model:other' },
      ])
  })

  it("a key's own rate limit counts gRPC calls: the 4th of 3/min is RESOURCE_EXHAUSTED with retry-after", async () => {
    const c = as('limited')
    for (let i = 0; i < 3; i++) await c.call('ModelInfer', inferRequest('add'))
    const err = await c.failure('ModelInfer', inferRequest('add'))
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED)
    expect(err.details).toMatch(/Rate limit exceeded \(per-key\)/)
    expect(Number(err.metadata.get('retry-after')[0])).toBeGreaterThanOrEqual(1)
  })

  it('a stream authenticates once and checks each message: its model, limits and usage', async () => {
    const denied = as(undefined).stream('ModelStreamInfer')
    const refused = await new Promise<ServiceError>((resolve) => {
      denied.on('error', resolve)
      denied.on('data', () => {})
      denied.write(inferRequest('add'))
    })
    expect(refused.code).toBe(status.UNAUTHENTICATED)

    const stream = as('infer-add').stream<
      unknown,
      { error_message?: string; infer_response: { model_name: string } }
    >('ModelStreamInfer')
    const answers: { error_message?: string }[] = []
    stream.on('data', (a: { error_message?: string }) => answers.push(a))
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('end', resolve)
      stream.on('error', reject)
    })
    stream.write(inferRequest('add'))
    stream.write(inferRequest('other'))
    stream.write(inferRequest('add'))
    stream.end()
    await ended
    expect(answers.map((a) => a.error_message ?? '')).toEqual([
      '',
      'This credential lacks the infer scope for model other.',
      '',
    ])
  })

  it('writes one request-log row per call (method GRPC, the full method name, the HTTP-equivalent status)', async () => {
    await suite.d.identity.recorder.flush()
    const { rows } = await suite.world.db.query<{
      method: string
      route: string
      status: number
      model: string
    }>(`SELECT method, route, status, model FROM request_log WHERE api_key_id = $1 ORDER BY at`, [
      keyIds['infer-add'],
    ])
    expect(rows).toEqual(
      expect.arrayContaining([
        { method: 'GRPC', route: '/inference.GRPCInferenceService/ModelInfer', status: 200, model: 'add' },
        {
          method: 'GRPC',
          route: '/inference.GRPCInferenceService/ModelStreamInfer',
          status: 403,
          model: 'other',
        },
      ]),
    )
    const streamed = rows.filter((r) => r.route.endsWith('/ModelStreamInfer'))
    expect(streamed.map((r) => r.status).sort()).toEqual([200, 200, 403])
  })
})
