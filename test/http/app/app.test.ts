import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { securityHeaders } from '../../../src/http/plugins/security.js'
import { type TestApp, testApp } from './fixtures.js'

let t: TestApp
beforeAll(async () => {
  t = await testApp()
})
afterAll(async () => t?.close())

describe('server endpoints', () => {
  it('GET /v2 describes the server and its extensions', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v2' })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({
      name: 'helix',
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
      extensions: ['binary_tensor_data', 'model_repository'],
    })
  })

  it('GET /v2/health/live answers live', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v2/health/live' })
    expect(res.json()).toEqual({ live: true })
  })

  it('GET /v2/health/ready lists every model with its state and execution provider', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v2/health/ready' })
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expect(body.ready).toBe(true)
    expect(body.models).toContainEqual({
      name: 'cls',
      version: '1',
      state: 'READY',
      execution_provider: 'cpu',
      device: 'cpu',
      queue_depth: 0,
      queue_capacity: expect.any(Number),
    })
    expect(body.models).toContainEqual(
      expect.objectContaining({ name: 'broken', state: 'UNAVAILABLE', reason: expect.any(String) }),
    )
  })
})

describe('model endpoints', () => {
  it('GET /v2/models/{m} returns metadata with -1 for dynamic dims and the provider in use', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v2/models/cls' })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({
      name: 'cls',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3, -1, -1] }],
      outputs: [{ name: 'softmax_0.tmp_0', datatype: 'FP32', shape: [-1, 2] }],
      execution_provider: 'cpu',
      device: 'cpu',
      max_batch_size: 32,
    })
  })

  it('GET /v2/models/{m}/versions/{v} returns that version', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v2/models/scale/versions/1' })
    expect(res.statusCode).toBe(200)
    expect(res.json().versions).toEqual(['1', '2'])
  })

  it('answers 404 with {"error"} for unknown models and versions', async () => {
    const model = await t.app.inject({ method: 'GET', url: '/v2/models/nope' })
    expect(model.statusCode).toBe(404)
    expect(model.json()).toEqual({ error: expect.stringContaining("Model 'nope'") })
    const version = await t.app.inject({ method: 'GET', url: '/v2/models/scale/versions/9' })
    expect(version.statusCode).toBe(404)
    expect(version.json().error).toMatch(/no version '9'/)
  })

  it('GET …/ready answers 200 when ready, 503 when not, 404 when unknown', async () => {
    expect((await t.app.inject({ method: 'GET', url: '/v2/models/cls/ready' })).json()).toEqual({
      name: 'cls',
      ready: true,
    })
    expect((await t.app.inject({ method: 'GET', url: '/v2/models/scale/versions/2/ready' })).statusCode).toBe(
      200,
    )
    const broken = await t.app.inject({ method: 'GET', url: '/v2/models/broken/ready' })
    expect(broken.statusCode).toBe(503)
    expect(broken.json()).toEqual({ error: "Model 'broken' is not ready." })
    const brokenVersion = await t.app.inject({ method: 'GET', url: '/v2/models/broken/versions/1/ready' })
    expect(brokenVersion.json()).toEqual({ error: "Model 'broken' version 1 is not ready." })
    expect((await t.app.inject({ method: 'GET', url: '/v2/models/nope/ready' })).statusCode).toBe(404)
  })

  it('model metadata of a model that is not ready is a 503', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v2/models/broken' })
    expect(res.statusCode).toBe(503)
    expect(res.json().error).toMatch(/not ready/)
  })
})

describe('repository endpoints', () => {
  it('POST /v2/repository/index lists versions and states; ready:true filters', async () => {
    const all = await t.app.inject({ method: 'POST', url: '/v2/repository/index', payload: {} })
    expect(all.statusCode).toBe(200)
    expect(all.json()).toContainEqual(
      expect.objectContaining({ name: 'broken', version: '1', state: 'UNAVAILABLE' }),
    )
    const ready = await t.app.inject({
      method: 'POST',
      url: '/v2/repository/index',
      payload: { ready: true },
    })
    const names = ready.json().map((r: { name: string }) => r.name)
    expect(names).toContain('cls')
    expect(names).not.toContain('broken')
    const charset = await t.app.inject({
      method: 'POST',
      url: '/v2/repository/index',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      payload: '{"ready": true}',
    })
    expect(charset.json()).toEqual(ready.json())
    const badBody = await t.app.inject({
      method: 'POST',
      url: '/v2/repository/index',
      payload: { ready: 'maybe' },
    })
    expect(badBody.statusCode).toBe(400)
    expect(badBody.json().error).toMatch(/ready/)
    const empty = await t.app.inject({ method: 'POST', url: '/v2/repository/index' })
    expect(empty.statusCode).toBe(200)
    expect(empty.json().length).toBe(all.json().length)
  })

  it('unload takes a model out of service and load brings it back', async () => {
    const unload = await t.app.inject({ method: 'POST', url: '/v2/repository/models/add/unload' })
    expect(unload.statusCode).toBe(200)
    expect(unload.json()).toEqual({})
    const infer = {
      method: 'POST' as const,
      url: '/v2/models/add/infer',
      payload: {
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] },
          { name: 'b', datatype: 'FP32', shape: [1, 4], data: [1, 1, 1, 1] },
        ],
      },
    }
    const refused = await t.app.inject(infer)
    expect(refused.statusCode).toBe(503)
    expect(refused.json().error).toMatch(/not ready/)
    const load = await t.app.inject({ method: 'POST', url: '/v2/repository/models/add/load' })
    expect(load.statusCode).toBe(200)
    const served = await t.app.inject(infer)
    expect(served.statusCode).toBe(200)
    expect(served.json().outputs[0].data).toEqual([2, 3, 4, 5])
  })

  it('load of a model that is not in the repository is a 404; a broken one a 500 with its reason', async () => {
    const missing = await t.app.inject({ method: 'POST', url: '/v2/repository/models/ghost/load' })
    expect(missing.statusCode).toBe(404)
    expect(missing.json().error).toMatch(/ghost/)
    const broken = await t.app.inject({ method: 'POST', url: '/v2/repository/models/broken/load' })
    expect(broken.statusCode).toBe(500)
    expect(broken.json().error).toMatch(/Model 'broken' failed to load/)
    const unknownUnload = await t.app.inject({ method: 'POST', url: '/v2/repository/models/ghost/unload' })
    expect(unknownUnload.statusCode).toBe(404)
  })
})

describe('cross-cutting behaviour', () => {
  it('echoes a sane X-Request-Id and generates one otherwise', async () => {
    const given = await t.app.inject({ method: 'GET', url: '/v2', headers: { 'x-request-id': 'abc-123' } })
    expect(given.headers['x-request-id']).toBe('abc-123')
    const hostile = await t.app.inject({
      method: 'GET',
      url: '/v2',
      headers: { 'x-request-id': 'a b\u0001<script>' },
    })
    expect(hostile.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('sets security headers on answers and errors alike', async () => {
    for (const url of ['/v2/health/live', '/no-such-route']) {
      const res = await t.app.inject({ method: 'GET', url })
      expect(res.headers['x-content-type-options']).toBe('nosniff')
      expect(res.headers['strict-transport-security']).toBe('max-age=63072000; includeSubDomains')
      expect(res.headers['content-security-policy']).toContain("default-src 'self'")
      expect(res.headers['content-security-policy']).toContain("frame-ancestors 'self'")
      expect(res.headers['x-frame-options']).toBe('SAMEORIGIN')
      expect(res.headers['cross-origin-opener-policy']).toBe('same-origin')
      expect(res.headers['referrer-policy']).toBe('no-referrer')
      expect(res.headers['x-request-id']).toBeTruthy()
    }
  })

  it('computes helmet headers once from its options', () => {
    const headers = securityHeaders({ contentSecurityPolicy: false, hsts: { maxAge: 60 } })
    expect(headers['content-security-policy']).toBeUndefined()
    expect(headers['strict-transport-security']).toBe('max-age=60; includeSubDomains')
    expect(Object.keys(headers).every((name) => name === name.toLowerCase())).toBe(true)
  })

  it('answers unknown routes with a 404 {"error"}', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v2/nothing?x=1' })
    expect(res.statusCode).toBe(404)
    expect(res.json()).toEqual({ error: 'No route GET /v2/nothing.' })
  })

  it('exposes the metrics the monitoring rules query', async () => {
    await t.app.inject({
      method: 'POST',
      url: '/v2/models/add/infer',
      payload: {
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] },
          { name: 'b', datatype: 'FP32', shape: [1, 4], data: [1, 1, 1, 1] },
        ],
      },
    })
    await t.app.inject({
      method: 'POST',
      url: '/v2/models/nope/infer',
      payload: { inputs: [{ name: 'a', datatype: 'FP32', shape: [1], data: [1] }] },
    })
    const res = await t.app.inject({ method: 'GET', url: '/metrics' })
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toMatch(/text\/plain/)
    const text = res.body
    expect(text).toMatch(
      /helix_http_requests_total\{method="POST",route="\/v2\/models\/:model\/infer",status="200"\} \d+/,
    )
    expect(text).toMatch(
      /helix_request_duration_seconds_bucket\{le="[\d.]+",method="POST",route="\/v2\/models\/:model\/infer",status_code="200"\}/,
    )
    expect(text).toMatch(/helix_inference_queue_seconds_count\{model="add",version="1"\} [1-9]/)
    expect(text).toMatch(/helix_inference_compute_seconds_count\{model="add",version="1"\} [1-9]/)
    expect(text).toMatch(/helix_inference_batch_size_count\{model="add"\} [1-9]/)
    expect(text).toMatch(
      /helix_inference_requests_total\{model="add",version="1",status="success",protocol="rest"\} [1-9]/,
    )
    expect(text).toMatch(
      /helix_inference_requests_total\{model="\(unknown\)",version="",status="MODEL_NOT_FOUND",protocol="rest"\} 1/,
    )
    expect(text).toMatch(/helix_inference_queue_depth\{model="cls",version="1"\} 0/)
    expect(text).toMatch(/helix_inference_queue_capacity\{model="slow",version="1"\} 1\n/)
    expect(text).toMatch(/helix_model_ready\{model="cls",version="1",provider="cpu"\} 1/)
    expect(text).toMatch(/helix_model_ready\{model="broken",version="1",provider="none"\} 0/)
    // Per model: compute busy time, loads and their time, failed loads by reason.
    expect(text).toMatch(/helix_model_busy_seconds_total\{model="add",version="1"\} [0-9.e-]+[1-9]/)
    expect(text).toMatch(/helix_model_loads_total\{model="cls"\} 1$/m)
    expect(text).toMatch(/helix_model_load_seconds_total\{model="cls"\} 0\.\d*[1-9]/)
    expect(text).toMatch(/helix_model_last_load_seconds\{model="cls"\} 0\.\d*[1-9]/)
    expect(text).toMatch(
      /helix_model_load_failures_total\{model="broken",reason="invalid_model"\} [1-9]\d*$/m,
    )
    // A model that failed to load is not marked as unloaded on purpose; one an operator unloads is.
    expect(text).not.toMatch(/helix_model_unloaded\{model="broken"/)
    expect(text).toMatch(/helix_process_cpu_seconds_total/)
    expect((await t.app.inject({ method: 'POST', url: '/v2/repository/models/cls/unload' })).statusCode).toBe(
      200,
    )
    const after = (await t.app.inject({ method: 'GET', url: '/metrics' })).body
    expect(after).toMatch(/helix_model_unloaded\{model="cls",version="1"\} 1/)
    expect(after).toMatch(/helix_model_ready\{model="cls",version="1",provider="none"\} 0/)
  })
})

describe('certificate expiry metric', () => {
  it('reports seconds until each certificate expires, as the alert rules expect', async () => {
    const { HelixMetrics } = await import('../../../src/core/metrics.js')
    const notAfter = new Date(Date.now() + 10 * 86_400_000)
    const metrics = new HelixMetrics(t.service, {
      defaultMetrics: false,
      certificates: () => [{ cert: 'server', notAfter }],
    })
    const text = await metrics.registry.metrics()
    const match = /helix_cert_expiry_seconds\{cert="server"\} ([0-9.e+]+)/.exec(text)
    expect(Number(match?.[1])).toBeGreaterThan(10 * 86_400 - 60)
    expect(Number(match?.[1])).toBeLessThanOrEqual(10 * 86_400)
  })
})

describe('authentication hook', () => {
  it('runs one authenticate hook before every route', async () => {
    const { UserError } = await import('../../../src/shared/errors.js')
    const guarded = await testApp({
      auth: {
        authenticate: async (request) => {
          if (request.headers.authorization !== 'Bearer ok')
            throw new UserError('UNAUTHENTICATED', 'Missing or invalid credentials.')
        },
      },
    })
    try {
      const refused = await guarded.app.inject({ method: 'GET', url: '/v2/models/cls' })
      expect(refused.statusCode).toBe(401)
      expect(refused.json()).toEqual({ error: 'Missing or invalid credentials.' })
      const allowed = await guarded.app.inject({
        method: 'GET',
        url: '/v2/models/cls',
        headers: { authorization: 'Bearer ok' },
      })
      expect(allowed.statusCode).toBe(200)
    } finally {
      await guarded.close()
    }
  })
})

describe('behind a proxy (server.trust_proxy)', () => {
  it('sees the client address from X-Forwarded-For only when the proxy is trusted', async () => {
    const { buildApp } = await import('../../../src/http/app.js')
    const seen: string[] = []
    const remember = async (request: { ip: string }) => {
      seen.push(request.ip)
    }
    for (const trustProxy of [['127.0.0.1'], []]) {
      const app = await buildApp({
        service: t.service,
        trustProxy,
        auth: { authenticate: remember as never },
      })
      await app.inject({
        method: 'GET',
        url: '/v2/health/live',
        remoteAddress: '127.0.0.1',
        headers: { 'x-forwarded-for': '203.0.113.7' },
      })
      await app.close()
    }
    expect(seen).toEqual(['203.0.113.7', '127.0.0.1'])
  })
})
