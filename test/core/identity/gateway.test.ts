import { describe, expect, it } from 'vitest'
import { createAccount } from '../../../src/core/identity/accounts.js'
import { CLI_ACTOR, createKey } from '../../../src/core/identity/api-keys.js'
import { bearer, daemon, INFER_BODY, identitySuite } from './identity-harness.js'

const PASSWORD = 'correct horse battery staple'

describe('gateway: OpenAPI, explorer, CORS, public routes and config switches', () => {
  const suite = identitySuite()

  it('serves an OpenAPI 3.1 document generated from the route schemas', async () => {
    const res = await suite.d.app.inject({ method: 'GET', url: '/openapi.json' })
    expect(res.statusCode).toBe(200)
    const doc = res.json()
    expect(doc.openapi).toBe('3.1.0')
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' })
    for (const path of [
      '/auth/login',
      '/auth/apikeys',
      '/auth/apikeys/{id}/rotate',
      '/auth/me',
      '/v2/models/{model}/infer',
      '/v2/health/live',
    ]) {
      expect(doc.paths, path).toHaveProperty([path])
    }
    expect(doc.paths['/auth/login'].post.requestBody.content['application/json'].schema.required).toEqual([
      'email',
      'password',
    ])
    expect(doc.paths['/openapi.json']).toBeUndefined()
  })

  it('every route of the daemon declares what it needs; anonymous calls get exactly that', async () => {
    const { app } = suite.d
    expect(app.undeclaredRoutes).toEqual([])
    const anonymous = async (method: 'GET' | 'POST', url: string) =>
      (await app.inject({ method, url, payload: method === 'POST' ? {} : undefined })).statusCode
    // Public: signing in, key discovery, the API description and (by default) health.
    for (const url of ['/.well-known/jwks.json', '/openapi.json', '/docs', '/v2/health/live']) {
      expect(await anonymous('GET', url), url).toBe(200)
    }
    expect(await anonymous('POST', '/auth/login')).toBe(400)
    // Everything else needs a credential.
    for (const [method, url] of [
      ['GET', '/metrics'],
      ['GET', '/v2'],
      ['GET', '/v2/models/cls'],
      ['GET', '/v2/models/cls/ready'],
      ['POST', '/v2/models/cls/infer'],
      ['POST', '/v2/repository/index'],
      ['POST', '/v2/repository/models/cls/load'],
      ['GET', '/auth/me'],
      ['GET', '/auth/apikeys'],
    ] as const) {
      expect(await anonymous(method, url), `${method} ${url}`).toBe(401)
    }
  })

  it('serves the explorer page and its script (no inline script, so the CSP holds)', async () => {
    const page = await suite.d.app.inject({ method: 'GET', url: '/docs' })
    expect(page.statusCode).toBe(200)
    expect(page.headers['content-type']).toContain('text/html')
    expect(page.body).toContain('<script src="/docs/explorer.js"></script>')
    expect(page.body).toContain('Paste an API key')
    expect(page.headers['content-security-policy']).toContain("script-src 'self'")
    const script = await suite.d.app.inject({ method: 'GET', url: '/docs/explorer.js' })
    expect(script.statusCode).toBe(200)
    expect(script.headers['content-type']).toContain('javascript')
    expect(script.body).toContain("fetch('/openapi.json')")
    expect(script.body).toContain('authorization')
  })

  it('/metrics needs the metrics scope (it names API key ids); admin has it, infer does not', async () => {
    const scrape = (key: string) =>
      suite.d.app.inject({ method: 'GET', url: '/metrics', headers: bearer(key) })
    const scraper = await createKey(suite.d.identity.deps, CLI_ACTOR, { name: 'prom', scopes: ['metrics'] })
    const ok = await scrape(scraper.key)
    expect(ok.statusCode).toBe(200)
    expect(ok.body).toContain('helix_request_duration_seconds')
    const inferOnly = await createKey(suite.d.identity.deps, CLI_ACTOR, { name: 'app', scopes: ['infer'] })
    const refused = await scrape(inferOnly.key)
    expect(refused.statusCode).toBe(403)
    expect(refused.headers['www-authenticate']).toContain('scope="metrics"')
  })

  it('health endpoints are public by default; model metadata is not', async () => {
    expect((await suite.d.app.inject({ method: 'GET', url: '/v2/health/live' })).statusCode).toBe(200)
    expect((await suite.d.app.inject({ method: 'GET', url: '/v2/health/ready' })).statusCode).toBe(200)
    expect((await suite.d.app.inject({ method: 'GET', url: '/v2' })).statusCode).toBe(401)
    expect((await suite.d.app.inject({ method: 'GET', url: '/v2/models/add' })).statusCode).toBe(401)
    expect((await suite.d.app.inject({ method: 'GET', url: '/no/such/route' })).statusCode).toBe(404)
    expect((await suite.d.app.inject({ method: 'GET', url: '/auth/me' })).statusCode).toBe(401)
    const key = await createKey(suite.d.identity.deps, CLI_ACTOR, { name: 'reader', scopes: ['models:read'] })
    expect(
      (await suite.d.app.inject({ method: 'GET', url: '/v2/models/add', headers: bearer(key.key) }))
        .statusCode,
    ).toBe(200)
    expect(
      (
        await suite.d.app.inject({
          method: 'POST',
          url: '/v2/repository/index',
          headers: bearer(key.key),
          payload: {},
        })
      ).statusCode,
    ).toBe(200)
    const bad = await suite.d.app.inject({
      method: 'GET',
      url: '/v2/models/add',
      headers: { authorization: 'Basic dXNlcjpwYXNz' },
    })
    expect(bad.statusCode).toBe(401)
  })

  it('CORS is closed by default: no Access-Control headers for a foreign origin', async () => {
    const res = await suite.d.app.inject({
      method: 'OPTIONS',
      url: '/auth/login',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    })
    expect(res.headers['access-control-allow-origin']).toBeUndefined()
  })

  it('CORS allows the configured origins only', async () => {
    const open = await daemon(suite.world, { auth: { cors_origins: ['https://app.example'] } })
    try {
      const ok = await open.app.inject({
        method: 'OPTIONS',
        url: '/auth/login',
        headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
      })
      expect(ok.statusCode).toBe(204)
      expect(ok.headers['access-control-allow-origin']).toBe('https://app.example')
      const evil = await open.app.inject({
        method: 'OPTIONS',
        url: '/auth/login',
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
      })
      expect(evil.headers['access-control-allow-origin']).toBeUndefined()
    } finally {
      await open.close()
    }
  })

  it('registration can be turned off, and e-mail verification can be required before login', async () => {
    const strict = await daemon(suite.world, {
      auth: { allow_registration: false, require_email_verification: true },
    })
    try {
      const reg = await strict.app.inject({
        method: 'POST',
        url: '/auth/register',
        payload: { email: 'x@example.test', password: PASSWORD },
      })
      expect(reg.statusCode).toBe(403)
      await createAccount(strict.identity.deps, { email: 'unverified@example.test', password: PASSWORD })
      const login = await strict.app.inject({
        method: 'POST',
        url: '/auth/login',
        payload: { email: 'unverified@example.test', password: PASSWORD },
      })
      expect(login.statusCode).toBe(403)
      expect(login.json().error).toMatch(/Verify your e-mail/)
    } finally {
      await strict.close()
    }
  })

  it('auth.enabled=false lets inference through without credentials (benchmarks only)', async () => {
    const open = await daemon(suite.world, { auth: { enabled: false } })
    try {
      const res = await open.app.inject({ method: 'POST', url: '/v2/models/add/infer', payload: INFER_BODY })
      expect(res.statusCode).toBe(200)
      expect((await open.app.inject({ method: 'GET', url: '/auth/me' })).statusCode).toBe(401)
    } finally {
      await open.close()
    }
  })

  it('sign-in routes have a tight per-IP limit', async () => {
    const tight = await daemon(suite.world, {
      rate_limit: { auth_per_ip_per_min: 3, per_ip_per_min: 1000, per_key_per_min: 1000 },
    })
    try {
      const codes = []
      for (let i = 0; i < 5; i++) {
        const res = await tight.app.inject({
          method: 'POST',
          url: '/auth/login',
          payload: { email: 'a@example.test', password: 'wrong wrong wrong' },
        })
        codes.push(res.statusCode)
      }
      expect(codes).toEqual([401, 401, 401, 429, 429])
      // other routes from the same IP still work
      expect((await tight.app.inject({ method: 'GET', url: '/v2/health/live' })).statusCode).toBe(200)
    } finally {
      await tight.close()
    }
  })
})
