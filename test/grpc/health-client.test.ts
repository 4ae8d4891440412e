import { readFile } from 'node:fs/promises'
import { createServer, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { checkGrpcHealth } from '../../src/grpc/health-client.js'
import { tempDir } from '../helpers/cli.js'
import { freePort } from '../provision/render/nginx-run.js'
import { writeSelfSignedCerts } from '../provision/render/self-signed.js'
import { type TestGrpc, testGrpc } from './fixtures.js'

describe('checkGrpcHealth against a plaintext gRPC face', () => {
  let t: TestGrpc
  beforeAll(async () => {
    t = await testGrpc()
  }, 60_000)
  afterAll(() => t?.close())

  it('answers the server readiness, and that of a named service or model', async () => {
    expect(await checkGrpcHealth(t.server.target, { tls: false }, 2000)).toEqual({ status: 'SERVING' })
    const named = { tls: false, service: 'inference.GRPCInferenceService' }
    expect(await checkGrpcHealth(t.server.target, named, 2000)).toEqual({ status: 'SERVING' })
    expect(await checkGrpcHealth(t.server.target, { tls: false, service: 'broken' }, 2000)).toEqual({
      status: 'NOT_SERVING',
    })
  })

  it('reports a failed call by its status name and message instead of throwing', async () => {
    expect(await checkGrpcHealth(t.server.target, { tls: false, service: 'nope' }, 2000)).toEqual({
      code: 'NOT_FOUND',
      error: "NOT_FOUND: Unknown service 'nope'.",
    })
    const port = await freePort()
    const refused = await checkGrpcHealth(`127.0.0.1:${port}`, { tls: false }, 2000)
    expect(refused.code).toBe('UNAVAILABLE')
    expect(refused.error).toBe(`UNAVAILABLE: connect ECONNREFUSED 127.0.0.1:${port}`)
  })

  it('gives up after the timeout on a port that never answers', async () => {
    const sockets = new Set<Socket>()
    const silent: Server = createServer((socket) => sockets.add(socket))
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
    try {
      const started = Date.now()
      const result = await checkGrpcHealth(
        `127.0.0.1:${(silent.address() as { port: number }).port}`,
        { tls: false },
        300,
      )
      expect(result.code).toBe('DEADLINE_EXCEEDED')
      expect(Date.now() - started).toBeLessThan(5000)
    } finally {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => silent.close(resolve))
    }
  })
})

describe('checkGrpcHealth against an mTLS gRPC face', () => {
  let t: TestGrpc
  let cleanup: () => Promise<void>
  let ca: Buffer
  let cert: Buffer
  let key: Buffer

  beforeAll(async () => {
    let dir: string
    ;({ dir, cleanup } = await tempDir())
    await writeSelfSignedCerts(dir)
    const read = (name: string) => readFile(join(dir, name))
    ;[ca, cert, key] = await Promise.all([read('ca.crt'), read('client.crt'), read('client.key')])
    t = await testGrpc({
      tls: { cert: await read('server.crt'), key: await read('server.key'), ca, mtls: true },
    })
  }, 60_000)
  afterAll(async () => {
    await t?.close()
    await cleanup?.()
  })

  it('trusts the CA it is given and presents the client certificate', async () => {
    expect(await checkGrpcHealth(t.server.target, { tls: true, ca, cert, key }, 2000)).toEqual({
      status: 'SERVING',
    })
  })

  it('says in one line why the handshake failed', async () => {
    const withoutCert = await checkGrpcHealth(t.server.target, { tls: true, ca }, 2000)
    expect(withoutCert).toEqual({
      code: 'UNAVAILABLE',
      error: expect.stringMatching(/^UNAVAILABLE: [\w ]*certificate required$/),
    })
    const untrusted = await checkGrpcHealth(t.server.target, { tls: true, cert, key }, 2000)
    expect(untrusted.code).toBe('UNAVAILABLE')
    expect(untrusted.error).not.toContain('\n')
    const plaintext = await checkGrpcHealth(t.server.target, { tls: false }, 2000)
    expect(plaintext.status).toBeUndefined()
  })
})
