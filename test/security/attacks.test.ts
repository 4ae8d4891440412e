import { createHmac, generateKeyPairSync } from 'node:crypto'
import net from 'node:net'
import { base64url, decodeJwt, decodeProtectedHeader, exportJWK, importJWK, SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createAccount } from '../../src/core/identity/accounts.js'
import { CLI_ACTOR, createKey, revokeKey, rotateKey } from '../../src/core/identity/api-keys.js'
import {
  bearer,
  type Daemon,
  daemon,
  type IdentityWorld,
  INFER_BODY,
  identityWorld,
} from '../core/identity/identity-harness.js'

/**
 * Attacks a deployed daemon must refuse, each by name, over real HTTP on loopback against the daemon
 * with its identity layer (PostgreSQL) and a real model. Each asserts what the attacker gets back and
 * that the daemon keeps serving.
 */

const PASSWORD = 'correct horse battery staple'

interface Raw {
  status?: number
  text: string
  closedAfterMs: number
}

/** A raw TCP exchange: `chunks` written `gapMs` apart; what came back and when the socket closed. */
function raw(url: string, chunks: (string | Buffer)[], gapMs = 0, giveUpMs = 15_000): Promise<Raw> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve) => {
    const started = Date.now()
    const socket = net.connect(Number(port), hostname)
    let text = ''
    let timer: NodeJS.Timeout | undefined
    const done = () => {
      clearTimeout(timer)
      clearTimeout(giveUp)
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]
      resolve({ ...(status ? { status: Number(status) } : {}), text, closedAfterMs: Date.now() - started })
    }
    const giveUp = setTimeout(() => {
      socket.destroy()
    }, giveUpMs)
    socket.on('data', (d) => {
      text += d.toString('latin1')
    })
    socket.on('close', done)
    socket.on('error', () => {})
    let i = 0
    const next = () => {
      if (socket.destroyed || i >= chunks.length) return
      socket.write(chunks[i++])
      timer = setTimeout(next, gapMs)
    }
    socket.on('connect', next)
  })
}

describe('attacks refused by a running daemon', () => {
  let world: IdentityWorld
  let d: Daemon
  let url: string
  let access: string
  let refreshToken: string
  let inferKey: { id: string; key: string }

  beforeAll(async () => {
    world = await identityWorld()
    d = await daemon(
      world,
      {
        rate_limit: { per_key_per_min: 100_000, per_ip_per_min: 100_000, auth_per_ip_per_min: 100_000 },
        auth: { ...world.config.auth, api_key_grace_s: 0, login_max_failures: 8, login_throttle_s: 60 },
      },
      { timeouts: { headersMs: 1500, requestMs: 3000 } },
    )
    url = await d.app.listen({ host: '127.0.0.1', port: 0 })
    const deps = d.identity.deps
    const { user } = await createAccount(deps, { email: 'mallory.victim@example.test', password: PASSWORD })
    for (const email of ['bystander@example.test', 'timing@example.test', 'writer@example.test'])
      await createAccount(deps, { email, password: PASSWORD })
    inferKey = await createKey(deps, CLI_ACTOR, { name: 'infer', scopes: ['infer'], userId: user.id })
    const signedIn = await fetch(`${url}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'mallory.victim@example.test', password: PASSWORD }),
    })
    ;({ access_token: access, refresh_token: refreshToken } = (await signedIn.json()) as {
      access_token: string
      refresh_token: string
    })
  }, 120_000)
  afterAll(async () => {
    await d?.close()
    await world?.teardown()
  })

  const me = (token: string) => fetch(`${url}/auth/me`, { headers: bearer(token) })
  const infer = (key: string, model = 'add') =>
    fetch(`${url}/v2/models/${model}/infer`, {
      method: 'POST',
      headers: { ...bearer(key), 'content-type': 'application/json' },
      body: JSON.stringify(INFER_BODY),
    })
  const login = (email: string, password: string) =>
    fetch(`${url}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password }),
    })

  /** The real token's header and claims, re-signed by the attacker's way. */
  const claims = () => ({ header: decodeProtectedHeader(access), payload: decodeJwt(access) })

  describe('forged and stale tokens', () => {
    it('a real access token works (the baseline every forgery below is measured against)', async () => {
      expect((await me(access)).status).toBe(200)
    })

    it('JWT alg "none" is refused', async () => {
      const { header, payload } = claims()
      const forged = `${base64url.encode(JSON.stringify({ ...header, alg: 'none' }))}.${base64url.encode(JSON.stringify(payload))}.`
      expect((await me(forged)).status).toBe(401)
    })

    it('HS256 signed with the public key as the secret (key confusion) is refused', async () => {
      const { header, payload } = claims()
      const jwks = (await (await fetch(`${url}/.well-known/jwks.json`)).json()) as { keys: object[] }
      const secret = JSON.stringify(jwks.keys[0])
      const head = base64url.encode(JSON.stringify({ ...header, alg: 'HS256' }))
      const body = base64url.encode(JSON.stringify(payload))
      const signature = createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url')
      expect((await me(`${head}.${body}.${signature}`)).status).toBe(401)
    })

    it('a token signed by another key under the real kid, or under an unknown kid, is refused', async () => {
      const { header, payload } = claims()
      const { privateKey } = generateKeyPairSync('ed25519')
      const key = await importJWK(await exportJWK(privateKey), 'EdDSA')
      const sign = (kid: string) =>
        new SignJWT(payload).setProtectedHeader({ alg: 'EdDSA', typ: 'at+jwt', kid }).sign(key)
      expect((await me(await sign(String(header.kid)))).status).toBe(401)
      expect((await me(await sign('attacker-key-1'))).status).toBe(401)
    })

    it('expired and not-yet-valid tokens, and tokens for another audience, are refused', async () => {
      // The daemon's own signing key, so only the time claims are wrong.
      const keys = d.identity.deps.keys
      expect(keys).toBeDefined()
      const signer = keys?.signer as NonNullable<typeof keys>['signer']
      const { payload } = claims()
      const now = Math.floor(Date.now() / 1000)
      const sign = (extra: Record<string, unknown>) =>
        new SignJWT({ ...payload, ...extra })
          .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'at+jwt' })
          .sign(signer.privateKey)
      expect((await me(await sign({}))).status, 'the same claims re-signed verify').toBe(200)
      expect((await me(await sign({ exp: now - 120, iat: now - 1000 }))).status).toBe(401)
      expect((await me(await sign({ nbf: now + 3600 }))).status).toBe(401)
      expect((await me(await sign({ aud: 'some-other-service' }))).status).toBe(401)
    })

    it('a refresh token used twice revokes the whole session', async () => {
      const first = await fetch(`${url}/auth/refresh`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refresh_token: refreshToken }),
      })
      expect(first.status).toBe(200)
      const { refresh_token: next } = (await first.json()) as { refresh_token: string }
      const replay = await fetch(`${url}/auth/refresh`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refresh_token: refreshToken }),
      })
      expect(replay.status).toBe(401)
      const afterReuse = await fetch(`${url}/auth/refresh`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refresh_token: next }),
      })
      expect(afterReuse.status, 'the newest token of the family is dead too').toBe(401)
    })
  })

  describe('API keys', () => {
    it('a key with one character changed (checksum), a revoked key and a rotated-out key are refused', async () => {
      expect((await infer(inferKey.key)).status).toBe(200)
      const last = inferKey.key.at(-1) === 'A' ? 'B' : 'A'
      expect((await infer(`${inferKey.key.slice(0, -1)}${last}`)).status).toBe(401)
      const deps = d.identity.deps
      const doomed = await createKey(deps, CLI_ACTOR, { name: 'doomed', scopes: ['infer'] })
      expect((await infer(doomed.key)).status).toBe(200)
      await revokeKey(deps, CLI_ACTOR, doomed.id)
      expect((await infer(doomed.key)).status).toBe(401)
      const rotating = await createKey(deps, CLI_ACTOR, { name: 'rotating', scopes: ['infer'] })
      const rotated = await rotateKey(deps, CLI_ACTOR, rotating.id)
      // auth.api_key_grace_s is 0 here: the old secret ends at once.
      expect((await infer(rotating.key)).status).toBe(401)
      expect((await infer(rotated.key)).status).toBe(200)
    })

    it('scope escalation: an infer key gets 403 on admin routes; a per-model key on other models', async () => {
      const admin = [
        ['POST', '/v2/repository/index'],
        ['POST', '/v2/repository/models/add/unload'],
      ] as const
      for (const [method, path] of admin) {
        const res = await fetch(`${url}${path}`, {
          method,
          headers: { ...bearer(inferKey.key), 'content-type': 'application/json' },
          ...(method === 'POST' ? { body: '{}' } : {}),
        })
        expect([401, 403], `${method} ${path}`).toContain(res.status)
      }
      // Key management: an inference key manages no keys at all (not even a narrower one for its
      // owner, nor a list of its owner's keys); a signed-in user sees only their own keys.
      for (const scopes of [['admin'], ['infer']]) {
        const minted = await fetch(`${url}/auth/apikeys`, {
          method: 'POST',
          headers: { ...bearer(inferKey.key), 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'escalate', scopes }),
        })
        expect(minted.status, scopes.join()).toBe(403)
      }
      const listedByKey = await fetch(`${url}/auth/apikeys?all=true`, { headers: bearer(inferKey.key) })
      expect(listedByKey.status).toBe(403)
      const revoked = await fetch(`${url}/auth/apikeys/${inferKey.id}`, {
        method: 'DELETE',
        headers: bearer(inferKey.key),
      })
      expect(revoked.status).toBe(403)
      // A fresh session: the refresh-reuse test may have ended the first one.
      const session = (await (await login('mallory.victim@example.test', PASSWORD)).json()) as {
        access_token: string
      }
      const listed = await fetch(`${url}/auth/apikeys?all=true`, { headers: bearer(session.access_token) })
      expect(listed.status).toBe(200)
      const owners = ((await listed.json()) as { user_id: string | null }[]).map((k) => k.user_id)
      expect(new Set(owners)).toEqual(new Set([decodeJwt(session.access_token).sub]))
      const narrow = await createKey(d.identity.deps, CLI_ACTOR, { name: 'narrow', scopes: ['infer:other'] })
      expect((await infer(narrow.key, 'add')).status).toBe(403)
    })
  })

  describe('account enumeration and password guessing', () => {
    it('login answers an unknown e-mail and a wrong password alike, in wording and in time', async () => {
      const unknown = await login('nobody.here@example.test', 'a wrong password given')
      const wrong = await login('timing@example.test', 'a wrong password given')
      expect(unknown.status).toBe(401)
      expect(wrong.status).toBe(401)
      const strip = (body: { error?: Record<string, unknown> }) => ({ ...body.error, request_id: undefined })
      expect(strip(await unknown.json())).toEqual(strip(await wrong.json()))
      const time = async (email: string) => {
        const samples: number[] = []
        for (let i = 0; i < 5; i++) {
          const t = performance.now()
          await login(email, `wrong password number ${i}`)
          samples.push(performance.now() - t)
        }
        return samples.sort((a, b) => a - b)[2]
      }
      // Fresh addresses so the per-account throttle below does not kick in.
      const a = await time('nobody.else@example.test')
      const b = await time('timing@example.test')
      expect(a / b).toBeGreaterThan(0.5)
      expect(a / b).toBeLessThan(2)
    })

    it('after login_max_failures on one account every attempt on it gets 429, the right password too; others sign in', async () => {
      for (let i = 0; i < 8; i++)
        expect((await login('mallory.victim@example.test', `guess ${i} of many`)).status).toBe(401)
      const locked = await login('mallory.victim@example.test', PASSWORD)
      expect(locked.status).toBe(429)
      expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0)
      // An address nobody has is throttled the same way, so a 429 reveals nothing.
      for (let i = 0; i < 8; i++) await login('ghost.account@example.test', `guess ${i} of many`)
      expect((await login('ghost.account@example.test', PASSWORD)).status).toBe(429)
      expect((await login('bystander@example.test', PASSWORD)).status).toBe(200)
    })
  })

  describe('hostile input', () => {
    it('SQL injection strings in text fields are stored and shown as text, and the tables are intact', async () => {
      const evil = "Robert'); DROP TABLE users;--"
      const signedIn = (await (await login('bystander@example.test', PASSWORD)).json()) as {
        access_token: string
      }
      const patched = await fetch(`${url}/auth/me`, {
        method: 'PATCH',
        headers: { ...bearer(signedIn.access_token), 'content-type': 'application/json' },
        body: JSON.stringify({ display_name: evil }),
      })
      expect(patched.status).toBe(200)
      expect(((await patched.json()) as { display_name: string }).display_name).toBe(evil)
      const created = await fetch(`${url}/auth/apikeys`, {
        method: 'POST',
        headers: { ...bearer(signedIn.access_token), 'content-type': 'application/json' },
        body: JSON.stringify({ name: "x' OR '1'='1", scopes: ['infer'] }),
      })
      expect(created.status).toBe(201)
      expect(((await created.json()) as { name: string }).name).toBe("x' OR '1'='1")
      expect((await login("' OR '1'='1' --", PASSWORD)).status).toBeGreaterThanOrEqual(400)
      expect(
        (
          await fetch(`${url}/v2/models/${encodeURIComponent("add' OR '1'='1")}`, {
            headers: bearer(inferKey.key),
          })
        ).status,
      ).toBe(404)
      const { rows } = await world.db.query<{ n: number }>('SELECT count(*)::int AS n FROM users')
      expect(rows[0].n).toBeGreaterThanOrEqual(2)
    })

    it('a NUL in the text fields of sign-in, profile and API keys gets 400, never a 500 (found by the gRPC fuzzer)', async () => {
      // PostgreSQL text cannot hold U+0000: a value with one must be refused as the caller's mistake.
      const nul = await login('nul\u0000@example.test', PASSWORD)
      expect(nul.status).toBe(400)
      expect(((await nul.json()) as { error: string }).error).toMatch(/NUL character/)
      const signedIn = (await (await login('writer@example.test', PASSWORD)).json()) as {
        access_token: string
      }
      const headers = { ...bearer(signedIn.access_token), 'content-type': 'application/json' }
      for (const body of [{ display_name: 'a\u0000b' }, { email: 'x\u0000y@example.test' }]) {
        const patched = await fetch(`${url}/auth/me`, {
          method: 'PATCH',
          headers,
          body: JSON.stringify(body),
        })
        expect(patched.status).toBe(400)
      }
      const key = await fetch(`${url}/auth/apikeys`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ name: 'k\u0000', scopes: ['infer'] }),
      })
      expect(key.status).toBe(400)
      expect((await me(signedIn.access_token)).status).toBe(200)
    })

    it('path traversal and NUL in model names and versions get 400 or 404, never a file or a 500', async () => {
      const paths = [
        '/v2/models/..%2F..%2F..%2Fetc%2Fpasswd',
        '/v2/models/add/versions/..%2F..%2F1',
        '/v2/models/add%00/ready',
        '/v2/models/add/versions/1%00',
        '/v2/models/%2e%2e/ready',
      ]
      for (const path of paths) {
        const res = await fetch(`${url}${path}`, { headers: bearer(inferKey.key) })
        expect([400, 404], path).toContain(res.status)
        expect(await res.text()).not.toMatch(/root:|ELF/)
      }
      const load = await fetch(`${url}/v2/repository/models/..%2F..%2Ftmp/load`, {
        method: 'POST',
        headers: bearer(access),
      })
      expect(load.status).toBeLessThan(500)
    })

    it('a NUL in a model name from the URL does not lose the request log and usage of its batch', async () => {
      const key = await createKey(d.identity.deps, CLI_ACTOR, { name: 'bookkeeping', scopes: ['infer'] })
      const before = await world.db.query(
        'SELECT count(*)::int AS n FROM request_log WHERE api_key_id = $1',
        [key.id],
      )
      // Both land in one batch of the usage recorder (flushed every 50 ms here).
      const [good, nul] = await Promise.all([infer(key.key), infer(key.key, 'add%00x')])
      expect(good.status).toBe(200)
      expect([400, 404]).toContain(nul.status)
      await d.identity.recorder.flush()
      const after = await world.db.query('SELECT count(*)::int AS n FROM request_log WHERE api_key_id = $1', [
        key.id,
      ])
      expect(after.rows[0].n - before.rows[0].n).toBe(2)
      const usage = await world.db.query(
        'SELECT sum(requests)::int AS n FROM api_key_usage WHERE key_id = $1',
        [key.id],
      )
      expect(usage.rows[0].n).toBe(2)
    })

    it('a request id that would inject headers is replaced; a bare CR in a header is refused', async () => {
      const res = await fetch(`${url}/v2/health/live`, {
        headers: { 'x-request-id': 'abc%0d%0aSet-Cookie:%20pwned=1' },
      })
      expect(res.headers.get('set-cookie')).toBeNull()
      expect(res.headers.get('x-request-id')).not.toContain('%0d')
      const crafted = await raw(url, [
        'GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\rSet-Cookie: pwned=1\r\n\r\n',
      ])
      expect(crafted.status).toBe(400)
      expect(crafted.text).not.toMatch(/set-cookie: pwned/i)
    })

    it('slowloris: headers dribbled in are cut off at server.headers_timeout_s, a dribbled body at request_timeout_s', async () => {
      const lines = Array.from({ length: 40 }, (_, i) => `X-Slow-${i}: ${'a'.repeat(10)}\r\n`)
      const slowHeaders = await raw(url, ['GET /v2/health/live HTTP/1.1\r\nHost: x\r\n', ...lines], 250)
      expect(slowHeaders.closedAfterMs).toBeLessThan(6000)
      expect(slowHeaders.status === undefined || slowHeaders.status === 408).toBe(true)
      const body = Array.from({ length: 60 }, () => 'x')
      const slowBody = await raw(
        url,
        [
          `POST /v2/models/add/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${inferKey.key}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`,
          ...body,
        ],
        200,
      )
      expect(slowBody.closedAfterMs).toBeLessThan(9000)
      expect((await infer(inferKey.key)).status, 'the daemon serves on').toBe(200)
    })

    it('oversized headers get 431 and a 300 MB body gets 413 without being read', async () => {
      const big = await fetch(`${url}/v2/health/live`, { headers: { 'x-big': 'a'.repeat(20_000) } })
      expect(big.status).toBe(431)
      const rssBefore = process.memoryUsage().rss
      // The announced length alone is refused: nothing of the body needs to arrive.
      const huge = await raw(
        url,
        [
          `POST /v2/models/add/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${inferKey.key}\r\nContent-Type: application/json\r\nContent-Length: ${300 * 1024 * 1024}\r\nConnection: close\r\n\r\n`,
        ],
        0,
        5000,
      )
      expect(huge.status, huge.text).toBe(413)
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(200 * 1024 * 1024)
    })

    it('a JSON depth bomb gets 400 and the daemon serves on', async () => {
      const depth = 100_000
      const res = await fetch(`${url}/v2/models/add/infer`, {
        method: 'POST',
        headers: { ...bearer(inferKey.key), 'content-type': 'application/json' },
        body: `${'['.repeat(depth)}${']'.repeat(depth)}`,
      })
      expect(res.status, await res.text()).toBe(400)
      const nested = await fetch(`${url}/v2/models/add/infer`, {
        method: 'POST',
        headers: { ...bearer(inferKey.key), 'content-type': 'application/json' },
        body: `{"inputs":[{"name":"a","shape":[1,4],"datatype":"FP32","data":${'['.repeat(depth)}1${']'.repeat(depth)}}]}`,
      })
      expect(nested.status, await nested.text()).toBe(400)
      expect((await infer(inferKey.key)).status).toBe(200)
    })
  })
})
