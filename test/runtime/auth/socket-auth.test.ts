import websocket from '@fastify/websocket'
import Fastify, { type FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { CLI_ACTOR, createKey, revokeKey } from '../../../src/runtime/auth/api-keys.js'
import { bearerCredential } from '../../../src/runtime/auth/authenticator.js'
import { createIdentity, type Identity } from '../../../src/runtime/auth/identity.js'
import {
  authenticateFirstMessage,
  closeWhenRevoked,
  SOCKET_UNAUTHENTICATED,
} from '../../../src/runtime/auth/socket-auth.js'
import { authPlugin } from '../../../src/runtime/plugins/auth.js'
import { errorsPlugin } from '../../../src/runtime/plugins/errors.js'
import { type IdentityWorld, identityWorld } from './identity-harness.js'

/** A daemon-shaped app with two WebSocket routes: header auth on upgrade, and first-message auth. */
async function socketApp(identity: Identity): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify()
  await app.register(websocket)
  await app.register(errorsPlugin)
  await app.register(authPlugin, { authenticate: identity.authenticate })
  const deps = identity.deps
  app.register(async (scope) => {
    scope.get('/v2/models/:model/stream', { websocket: true }, (socket, request) => {
      const credential = bearerCredential(request.headers.authorization) as string
      closeWhenRevoked(deps, credential, socket, 100)
      socket.on('message', (data) => socket.send(`echo:${data}`))
    })
    scope.get(
      '/v2/models/:model/browser/stream',
      { websocket: true, config: { socketAuth: 'first-message' } },
      (socket) => {
        let authed = false
        socket.on('message', async (data) => {
          if (!authed) {
            try {
              const { principal, credential } = await authenticateFirstMessage(deps, data)
              authed = true
              closeWhenRevoked(deps, credential, socket, 100)
              socket.send(`hello:${principal.keyId}`)
            } catch {
              socket.close(SOCKET_UNAUTHENTICATED, 'authentication failed')
            }
            return
          }
          socket.send(`echo:${data}`)
        })
      },
    )
  })
  const url = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url: url.replace('http', 'ws') }
}

function open(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers })
    ws.once('open', () => resolve(ws))
    ws.once('unexpected-response', (_req, res) =>
      reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })),
    )
    ws.once('error', reject)
  })
}

const next = (ws: WebSocket) =>
  new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))))
const closed = (ws: WebSocket) => new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))

describe('WebSocket authentication (real sockets, real PostgreSQL)', () => {
  let world: IdentityWorld
  let identity: Identity
  let server: { app: FastifyInstance; url: string }
  beforeAll(async () => {
    world = await identityWorld()
    identity = await createIdentity({ home: world.database.home, config: world.config, db: world.db })
    server = await socketApp(identity)
  })
  afterAll(async () => {
    await server?.app.close()
    await identity?.close()
    await world?.teardown()
  })

  it('authenticates the upgrade from the Authorization header; no or a bad key gets 401', async () => {
    const key = await createKey(identity.deps, CLI_ACTOR, { name: 'ws', scopes: ['infer'] })
    const ws = await open(`${server.url}/v2/models/add/stream`, { authorization: `Bearer ${key.key}` })
    ws.send('hi')
    expect(await next(ws)).toBe('echo:hi')
    ws.close()
    await expect(open(`${server.url}/v2/models/add/stream`)).rejects.toMatchObject({ status: 401 })
    await expect(
      // One character changed (never to itself: a key that already ends in x would stay valid).
      open(`${server.url}/v2/models/add/stream`, {
        authorization: `Bearer ${key.key.slice(0, -1)}${key.key.endsWith('x') ? 'y' : 'x'}`,
      }),
    ).rejects.toMatchObject({
      status: 401,
    })
    const reader = await createKey(identity.deps, CLI_ACTOR, { name: 'reader', scopes: ['models:read'] })
    await expect(
      open(`${server.url}/v2/models/add/stream`, { authorization: `Bearer ${reader.key}` }),
    ).rejects.toMatchObject({ status: 403 })
  })

  it('a revoked key closes its open socket with 4401', async () => {
    const key = await createKey(identity.deps, CLI_ACTOR, { name: 'ws-revoke', scopes: ['infer'] })
    const ws = await open(`${server.url}/v2/models/add/stream`, { authorization: `Bearer ${key.key}` })
    const code = closed(ws)
    ws.send('still here?')
    expect(await next(ws)).toBe('echo:still here?')
    await revokeKey(identity.deps, CLI_ACTOR, key.id)
    expect(await code).toBe(SOCKET_UNAUTHENTICATED)
  })

  it('browsers authenticate with the first message; anything else closes the socket', async () => {
    const key = await createKey(identity.deps, CLI_ACTOR, { name: 'browser', scopes: ['infer'] })
    const ws = await open(`${server.url}/v2/models/add/browser/stream`)
    ws.send(JSON.stringify({ type: 'auth', token: key.key }))
    expect(await next(ws)).toBe(`hello:${key.id}`)
    ws.send('x')
    expect(await next(ws)).toBe('echo:x')
    const code = closed(ws)
    await revokeKey(identity.deps, CLI_ACTOR, key.id)
    expect(await code).toBe(SOCKET_UNAUTHENTICATED)
    for (const first of [
      'not json',
      JSON.stringify({ type: 'hello' }),
      JSON.stringify({ type: 'auth', token: 'hx_nope' }),
    ]) {
      const bad = await open(`${server.url}/v2/models/add/browser/stream`)
      const badCode = closed(bad)
      bad.send(first)
      expect(await badCode, first).toBe(SOCKET_UNAUTHENTICATED)
    }
    // a plain (non-upgrade) request to the same route still needs a header credential
    const res = await fetch(`${server.url.replace('ws', 'http')}/v2/models/add/browser/stream`)
    expect(res.status).toBe(401)
  })
})
