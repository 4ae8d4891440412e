import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RealtimeClient, type RealtimeClientEvent } from '../../src/client/realtime-client.js'
import { issueAccessToken } from '../../src/core/identity/access-token.js'
import { createAccount } from '../../src/core/identity/accounts.js'
import { CLI_ACTOR, createKey, revokeKey } from '../../src/core/identity/api-keys.js'
import { createIdentity, type Identity } from '../../src/core/identity/identity.js'
import { httpAuthentication } from '../../src/http/identity.js'
import { parseConfig } from '../../src/shared/config.js'
import { type IdentityWorld, identityWorld } from '../core/identity/identity-harness.js'
import { writeChatModel } from '../helpers/text-models.js'
import {
  addFrame,
  eventually,
  RawSocket,
  type RealtimeDaemon,
  startRealtimeDaemon,
} from './realtime-fixtures.js'

/**
 * /v1/realtime with authentication on (embedded PostgreSQL): the auth frame, scopes, limits and
 * usage per request, revocation and expiry while connected, sockets per credential.
 */
let world: IdentityWorld
let identity: Identity
let d: RealtimeDaemon
const keys: Record<string, { key: string; id: string }> = {}

beforeAll(async () => {
  world = await identityWorld()
  await writeChatModel(join(world.database.home.modelsDir, 'chat', '1'), { seed: 7 })
  const config = parseConfig({
    ...structuredClone(world.config),
    rate_limit: { ...world.config.rate_limit, auth_per_ip_per_min: 10_000 },
  })
  identity = await createIdentity({ home: world.database.home, config, db: world.db, usageFlushMs: 50 })
  d = await startRealtimeDaemon({
    repositoryDir: world.database.home.modelsDir,
    auth: httpAuthentication(identity),
    realtime: { authTimeoutMs: 500, credentialCheckMs: 200, maxSocketsPerPrincipal: 2 },
  })
  const make = async (name: string, scopes: string[], extra: { rateLimitPerMin?: number } = {}) => {
    const created = await createKey(identity.deps, CLI_ACTOR, { name, scopes, ...extra })
    keys[name] = { key: created.key, id: created.id }
  }
  await make('all', ['infer'])
  await make('infer-add', ['infer:add'])
  await make('reader', ['models:read'])
  await make('limited', ['infer'], { rateLimitPerMin: 3 })
  await make('doomed', ['infer'])
  await make('doomed-client', ['infer'])
  await make('sockets', ['infer'])
}, 120_000)

afterAll(async () => {
  await d?.close()
  await identity?.close()
  await world?.teardown()
})

describe('the auth frame', () => {
  it('an API key opens a session; a bad or missing token closes the socket with 4401 and the reason', async () => {
    const { socket } = await RawSocket.session(d.url, keys.all.key)
    socket.send(addFrame('i', [1, 2, 3, 4], [1, 1, 1, 1]))
    expect(await socket.end('i')).toMatchObject({ type: 'result', outputs: [{ data: [2, 3, 4, 5] }] })
    socket.close()

    const bad = await RawSocket.open(d.url)
    bad.send({ type: 'auth', token: 'hx_notarealkey0000000000000000000' })
    expect(await bad.closed).toEqual({ code: 4401, reason: 'Invalid credentials.' })

    const none = await RawSocket.open(d.url)
    none.send({ type: 'auth' })
    expect(await none.closed).toMatchObject({
      code: 4401,
      reason: expect.stringContaining('needs credentials'),
    })

    const silent = await RawSocket.open(d.url)
    expect(await silent.closed).toEqual({ code: 4401, reason: 'authentication timed out' })
  })

  it('an access token of a user opens a session, and the socket closes when the token expires', async () => {
    const { user } = await createAccount(identity.deps, { email: 'rt-user@example.com' }, { actor: 'cli' })
    const signer = identity.deps.keys?.signer
    if (!signer) throw new Error('no signing key')
    const { jwt } = identity.deps.config
    const { token } = await issueAccessToken(
      signer,
      { issuer: jwt.issuer, audience: jwt.audience, ttlSeconds: 2 },
      { sub: user.id, scope: ['infer'] },
    )
    const { socket } = await RawSocket.session(d.url, token)
    socket.send(addFrame('i', [1, 2, 3, 4], [1, 1, 1, 1]))
    expect((await socket.end('i')).type).toBe('result')
    const started = Date.now()
    expect(await socket.closed).toEqual({ code: 4401, reason: 'credential expired' })
    expect(Date.now() - started).toBeLessThan(3000)
  })

  it('more sockets than realtime.max_sockets_per_principal are refused with 4429', async () => {
    const one = await RawSocket.session(d.url, keys.sockets.key)
    const two = await RawSocket.session(d.url, keys.sockets.key)
    const three = await RawSocket.open(d.url)
    three.send({ type: 'auth', token: keys.sockets.key })
    expect(await three.closed).toMatchObject({
      code: 4429,
      reason: expect.stringContaining('too many sockets'),
    })
    one.socket.close()
    await one.socket.closed
    const four = await RawSocket.session(d.url, keys.sockets.key)
    four.socket.close()
    two.socket.close()
  })
})

describe('each request frame', () => {
  it('needs the infer scope for its model: other models and other scopes get FORBIDDEN frames', async () => {
    const { socket } = await RawSocket.session(d.url, keys['infer-add'].key)
    socket.send(addFrame('ok', [1, 2, 3, 4], [1, 1, 1, 1]))
    socket.send(addFrame('no', [1, 2, 3, 4], [1, 1, 1, 1], 'other'))
    expect((await socket.end('ok')).type).toBe('result')
    expect(await socket.end('no')).toMatchObject({
      type: 'error',
      code: 'FORBIDDEN',
      status: 403,
      message: 'This credential lacks the infer scope for model other.',
    })
    socket.close()
    const reader = await RawSocket.session(d.url, keys.reader.key)
    reader.socket.send(addFrame('r', [1, 2, 3, 4], [1, 1, 1, 1]))
    expect(await reader.socket.end('r')).toMatchObject({ code: 'FORBIDDEN' })
    reader.socket.close()
  })

  it("counts against the key's rate limit, as a REST request does", async () => {
    const { socket } = await RawSocket.session(d.url, keys.limited.key)
    for (const id of ['a', 'b', 'c', 'd']) socket.send(addFrame(id, [1, 2, 3, 4], [1, 1, 1, 1]))
    const ends = await Promise.all(['a', 'b', 'c', 'd'].map((id) => socket.end(id)))
    expect(ends.filter((f) => f.type === 'result').length).toBe(3)
    expect(ends.find((f) => f.type === 'error')).toMatchObject({
      code: 'RATE_LIMITED',
      status: 429,
      retry_after: expect.any(Number),
    })
    socket.close()
  })

  it('is recorded in the usage counters and the request log', async () => {
    const { socket, session } = await RawSocket.session(d.url, keys.all.key)
    socket.send(addFrame('logged', [1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 1, 1, 1, 1, 1, 1]))
    await socket.end('logged')
    socket.close()
    await identity.recorder.flush()
    const { rows } = await world.db.query<{ route: string; model: string; status: number; items: number }>(
      'SELECT route, model, status, items FROM request_log WHERE request_id = $1',
      [`${session.session_id}/logged`],
    )
    expect(rows).toEqual([{ route: '/v1/realtime#infer', model: 'add', status: 200, items: 2 }])
  })
})

describe('a credential revoked while connected', () => {
  it('closes the socket with 4401 "credential revoked", and its session cannot be resumed', async () => {
    const { socket, session } = await RawSocket.session(d.url, keys.doomed.key)
    socket.send(addFrame('before', [1, 2, 3, 4], [1, 1, 1, 1]))
    await socket.end('before')
    await revokeKey(identity.deps, CLI_ACTOR, keys.doomed.id)
    expect(await socket.closed).toEqual({ code: 4401, reason: 'credential revoked' })
    await eventually(async () =>
      (await d.metrics.registry.metrics()).includes('helix_realtime_closes_total{reason="revoked"} 1'),
    )
    const other = await RawSocket.session(d.url, keys.all.key)
    other.socket.send({ type: 'resume', session_id: session.session_id, resume_token: session.resume_token })
    expect(await other.socket.next((f) => f.type === 'error')).toMatchObject({ code: 'SESSION_NOT_FOUND' })
    other.socket.close()
  })

  it('another credential cannot resume a session, even with its token', async () => {
    const first = await RawSocket.session(d.url, keys.all.key)
    first.socket.send({ type: 'generate', id: 'g', model: 'nope', prompt: 'x' })
    await first.socket.end('g')
    first.socket.ws.terminate()
    const thief = await RawSocket.session(d.url, keys['infer-add'].key)
    thief.socket.send({
      type: 'resume',
      session_id: first.session.session_id,
      resume_token: first.session.resume_token,
    })
    expect(await thief.socket.next((f) => f.type === 'error')).toMatchObject({ code: 'SESSION_NOT_FOUND' })
    thief.socket.close()
    // The owner still can: the refused attempt spent nothing.
    const owner = await RawSocket.session(d.url, keys.all.key)
    owner.socket.send({
      type: 'resume',
      session_id: first.session.session_id,
      resume_token: first.session.resume_token,
    })
    expect(await owner.socket.next((f) => f.type === 'resumed')).toMatchObject({
      session_id: first.session.session_id,
    })
    owner.socket.close()
  })
})

describe('the realtime client with authentication', () => {
  it('connect() rejects with UNAUTHENTICATED (401) for a bad key', async () => {
    const c = new RealtimeClient({ url: d.url, token: 'hx_notarealkey0000000000000000000' })
    await expect(c.connect()).rejects.toMatchObject({ code: 'UNAUTHENTICATED', status: 401 })
  })

  it('a key revoked while a generation streams fails it with UNAUTHENTICATED, without reconnecting', async () => {
    const events: string[] = []
    const c = new RealtimeClient({
      url: d.url,
      token: keys['doomed-client'].key,
      onEvent: (e) => events.push(e.type),
    })
    await c.connect()
    const stream = c.generate({ model: 'chat', prompt: 'Go', max_tokens: 2000, ignore_eos: true })
    const iterator = stream[Symbol.asyncIterator]()
    expect((await iterator.next()).done).toBe(false)
    await revokeKey(identity.deps, CLI_ACTOR, keys['doomed-client'].id)
    await expect(stream.result).rejects.toMatchObject({ code: 'UNAUTHENTICATED', status: 401 })
    expect(events).not.toContain('reconnecting')
    expect(events.at(-1)).toBe('closed')
  })

  it('a token function renews an expired access token: the client reconnects as the same user, nothing lost', async () => {
    const { user } = await createAccount(identity.deps, { email: 'rt-renew@example.com' }, { actor: 'cli' })
    const signer = identity.deps.keys?.signer
    if (!signer) throw new Error('no signing key')
    const { jwt } = identity.deps.config
    let issued = 0
    const events: RealtimeClientEvent[] = []
    const c = new RealtimeClient({
      url: d.url,
      token: async () => {
        issued++
        const settings = { issuer: jwt.issuer, audience: jwt.audience, ttlSeconds: 2 }
        return (await issueAccessToken(signer, settings, { sub: user.id, scope: ['infer'] })).token
      },
      reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
      onEvent: (e) => events.push(e),
    })
    await c.connect()
    const stream = c.generate({ model: 'chat', prompt: 'Go', max_tokens: 1000, ignore_eos: true })
    const seqs: number[] = []
    for await (const delta of stream) seqs.push(delta.seq)
    expect(seqs).toEqual(seqs.map((_, k) => k + 1))
    expect((await stream.result).usage.completion_tokens).toBe(seqs.length)
    await eventually(() => events.some((e) => e.type === 'disconnected'), 5000)
    expect(events.find((e) => e.type === 'disconnected')).toEqual({
      type: 'disconnected',
      code: 4401,
      reason: 'credential expired',
    })
    // Each token lives 2 s: the client keeps renewing it, resuming whatever is under way.
    await eventually(() => issued >= 2 && c.connected)
    expect(
      (await c.infer({ model: 'add', inputs: addFrame('x', [1, 2, 3, 4], [0, 0, 0, 0]).inputs })).outputs[0]
        .data,
    ).toEqual([1, 2, 3, 4])
    await c.close()
  })
})
