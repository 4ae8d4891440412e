import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  credentials,
  loadPackageDefinition,
  type Metadata,
  Server,
  ServerCredentials,
  type ServiceDefinition,
  status,
} from '@grpc/grpc-js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadProtos } from '../../../src/grpc/protos.js'
import { renderArtifacts } from '../../../src/provision/render/render.js'
import { parseConfig } from '../../../src/shared/config.js'
import { HelixHome } from '../../../src/shared/home.js'
import { bytesOf, client, floatsOf, type TestClient, type TestGrpc, testGrpc } from '../../grpc/fixtures.js'
import { tempDir } from '../../helpers/cli.js'
import { hasTool } from '../../helpers/tools.js'
import { freePort, startNginx } from './nginx-run.js'
import { writeSelfSignedCerts } from './self-signed.js'

/**
 * Real gRPC calls from a grpc-js client, over TLS trusting the helix CA, through the generated nginx
 * to a real daemon gRPC face (the model service over real .onnx files).
 */

const hasNginx = hasTool('nginx') && hasTool('openssl')

interface Certs {
  ca: Buffer
  cert: Buffer
  key: Buffer
}

async function readCerts(home: HelixHome): Promise<Certs> {
  const read = (name: string) => readFile(join(home.certsDir, name))
  return { ca: await read('ca.crt'), cert: await read('client.crt'), key: await read('client.key') }
}

/** Renders nginx.conf for `settings` into a fresh helix directory with throwaway certificates, and starts it. */
async function nginxInFront(settings: (ports: { grpc: number }) => Record<string, unknown>): Promise<{
  home: HelixHome
  port: number
  logDir: string
  stop: () => Promise<void>
  cleanup: () => Promise<void>
}> {
  const { dir, cleanup } = await tempDir()
  const home = new HelixHome(join(dir, 'h'))
  await writeSelfSignedCerts(home.certsDir)
  const port = await freePort()
  const base = settings({ grpc: port })
  const config = parseConfig({
    ...base,
    nginx: {
      // REST is not used here, but nginx still needs an upstream for it.
      upstreams: [`127.0.0.1:${await freePort()}`],
      http_port: await freePort(),
      https_port: await freePort(),
      grpc_port: port,
      ...(base.nginx as object),
    },
  })
  await renderArtifacts(home, config, ['nginx'])
  const logDir = join(dir, 'prefix')
  const { stop } = await startNginx(logDir, join(home.nginxDir, 'nginx.conf'), port)
  return { home, port, logDir, stop, cleanup }
}

function addRequest(id: string, row: number[]) {
  return {
    model_name: 'add',
    id,
    inputs: [
      { name: 'a', datatype: 'FP32', shape: [1, 4] },
      { name: 'b', datatype: 'FP32', shape: [1, 4] },
    ],
    raw_input_contents: [bytesOf(new Float32Array(row)), bytesOf(new Float32Array(row))],
  }
}

interface StreamAnswer {
  error_message: string
  infer_response: { id: string; raw_output_contents: Buffer[] }
}

describe.skipIf(!hasNginx)('gRPC through the generated nginx to a daemon', () => {
  let daemon: TestGrpc
  let proxy: Awaited<ReturnType<typeof nginxInFront>>
  let inference: TestClient
  let health: TestClient

  beforeAll(async () => {
    daemon = await testGrpc()
    proxy = await nginxInFront(() => ({
      // nginx admits unary calls up to one message of this size; the daemon's own limit is 64 MiB.
      server: { grpc: { max_message_bytes: 4096 } },
      nginx: { grpc_upstreams: [daemon.server.target], rate_per_ip: 20 },
    }))
    const { ca } = await readCerts(proxy.home)
    const tls = { credentials: credentials.createSsl(ca) }
    inference = client(`127.0.0.1:${proxy.port}`, 'inference.GRPCInferenceService', tls)
    health = client(`127.0.0.1:${proxy.port}`, 'grpc.health.v1.Health', tls)
  }, 60_000)
  afterAll(async () => {
    inference?.close()
    health?.close()
    await proxy?.stop()
    await daemon?.close()
    await proxy?.cleanup()
  })

  it('answers grpc.health.v1 Check and KServe calls over TLS', async () => {
    expect(await health.call('Check', {})).toEqual({ status: 'SERVING' })
    expect(await inference.call('ServerMetadata')).toMatchObject({ name: 'helix' })
    const response = await inference.call<{ model_name: string; raw_output_contents: Buffer[] }>(
      'ModelInfer',
      addRequest('through-nginx', [1, 2, 3, 4]),
    )
    expect(response.model_name).toBe('add')
    expect(floatsOf(response.raw_output_contents[0])).toEqual([2, 4, 6, 8])
    // The daemon's own errors pass through unchanged, with their metadata.
    const unknown = await inference.failure('ModelMetadata', { name: 'nope' })
    expect(unknown.code).toBe(status.NOT_FOUND)
    expect(unknown.metadata.get('helix-error-code')).toEqual(['MODEL_NOT_FOUND'])
  })

  it('carries a ModelStreamInfer stream whose messages together exceed the unary limit', async () => {
    const stream = inference.stream<unknown, StreamAnswer>('ModelStreamInfer')
    const answers: StreamAnswer[] = []
    stream.on('data', (answer: StreamAnswer) => answers.push(answer))
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('end', resolve)
      stream.on('error', reject)
    })
    // ~100 bytes a message: 100 of them are well past the 4 KiB a unary call may carry.
    for (let i = 0; i < 100; i++) stream.write(addRequest(`s${i}`, [i, i, i, i]))
    stream.end()
    await ended
    expect(answers.map((a) => a.infer_response.id)).toEqual(Array.from({ length: 100 }, (_, i) => `s${i}`))
    expect(floatsOf(answers[99].infer_response.raw_output_contents[0])).toEqual([198, 198, 198, 198])
  })

  it('refuses a unary call larger than one message as RESOURCE_EXHAUSTED, before the daemon', async () => {
    const big = {
      model_name: 'add',
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [1024, 4] },
        { name: 'b', datatype: 'FP32', shape: [1024, 4] },
      ],
      raw_input_contents: [bytesOf(new Float32Array(4096)), bytesOf(new Float32Array(4096))],
    }
    const refused = await inference.failure('ModelInfer', big)
    expect(refused.code).toBe(status.RESOURCE_EXHAUSTED)
    expect(refused.details).toContain('at the proxy')
  })

  it('logs each call with its gRPC status', async () => {
    const entries = (await readFile(join(proxy.logDir, 'access.log'), 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { uri: string; status: number; grpc_status: string })
    expect(entries).toContainEqual(
      expect.objectContaining({ uri: '/grpc.health.v1.Health/Check', status: 200, grpc_status: '0' }),
    )
    expect(entries).toContainEqual(
      expect.objectContaining({ uri: '/inference.GRPCInferenceService/ModelMetadata', grpc_status: '5' }),
    )
  })

  it('answers RESOURCE_EXHAUSTED when one client exceeds its rate', async () => {
    const outcomes = await Promise.all(
      Array.from({ length: 60 }, () =>
        health.call('Check', {}).then(
          () => 'ok',
          (err: { code: number; details: string }) => `${err.code} ${err.details}`,
        ),
      ),
    )
    expect(outcomes).toContain('ok')
    expect(outcomes).toContain(
      `${status.RESOURCE_EXHAUSTED} rate limit or message size exceeded at the proxy`,
    )
    // The bucket refills at 20 calls a second.
    await sleep(1500)
  })

  it('answers UNAVAILABLE, not an HTML page, when no daemon answers', async () => {
    await daemon.server.shutdown(1000)
    const down = await health.failure('Check', {})
    expect(down.code).toBe(status.UNAVAILABLE)
    expect(down.details).toBe('no helix daemon answered')
  })
})

describe.skipIf(!hasNginx)('gRPC through nginx: forwarded client address', () => {
  let upstream: Server
  let proxy: Awaited<ReturnType<typeof nginxInFront>>
  let seen: Metadata | undefined

  beforeAll(async () => {
    // A gRPC server that records the metadata nginx sends along with a health check.
    const grpc = loadPackageDefinition(loadProtos().definition) as unknown as {
      grpc: { health: { v1: { Health: { service: ServiceDefinition } } } }
    }
    upstream = new Server()
    upstream.addService(grpc.grpc.health.v1.Health.service, {
      Check: (call: { metadata: Metadata }, callback: (err: null, res: unknown) => void) => {
        seen = call.metadata
        callback(null, { status: 'SERVING' })
      },
    })
    const port = await new Promise<number>((resolve, reject) =>
      upstream.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    )
    proxy = await nginxInFront(() => ({ nginx: { grpc_upstreams: [`127.0.0.1:${port}`] } }))
  })
  afterAll(async () => {
    await proxy?.stop()
    upstream?.forceShutdown()
    await proxy?.cleanup()
  })

  it('passes X-Forwarded-For, X-Real-IP and X-Forwarded-Proto as metadata', async () => {
    const { ca } = await readCerts(proxy.home)
    const health = client(`127.0.0.1:${proxy.port}`, 'grpc.health.v1.Health', {
      credentials: credentials.createSsl(ca),
    })
    try {
      const metadata = health.metadata({ 'x-forwarded-for': '203.0.113.7' })
      expect(await health.call('Check', {}, { metadata })).toEqual({ status: 'SERVING' })
    } finally {
      health.close()
    }
    // The client's own X-Forwarded-For is kept and the address nginx saw appended.
    expect(seen?.get('x-forwarded-for')).toEqual(['203.0.113.7, 127.0.0.1'])
    expect(seen?.get('x-real-ip')).toEqual(['127.0.0.1'])
    expect(seen?.get('x-forwarded-proto')).toEqual(['https'])
    expect(seen?.get('x-request-id')?.[0]).toMatch(/^[0-9a-f]{32}$/)
  })
})

describe.skipIf(!hasNginx)('gRPC through nginx with mTLS to a TLS daemon', () => {
  let daemon: TestGrpc
  let proxy: Awaited<ReturnType<typeof nginxInFront>>
  let certs: Certs
  const target = () => `127.0.0.1:${proxy.port}`

  beforeAll(async () => {
    // The daemon's port must be known before nginx.conf names it.
    const daemonPort = await freePort()
    proxy = await nginxInFront(() => ({
      server: { mtls: true },
      nginx: { mtls: true, grpc_upstreams: [`127.0.0.1:${daemonPort}`] },
    }))
    certs = await readCerts(proxy.home)
    const serverKey = await readFile(join(proxy.home.certsDir, 'server.key'))
    const serverCert = await readFile(join(proxy.home.certsDir, 'server.crt'))
    daemon = await testGrpc({
      port: daemonPort,
      tls: { cert: serverCert, key: serverKey, ca: certs.ca, mtls: true },
    })
  }, 60_000)
  afterAll(async () => {
    await proxy?.stop()
    await daemon?.close()
    await proxy?.cleanup()
  })

  it('lets a client with a certificate from the CA through over grpcs to the daemon', async () => {
    const withCert = client(target(), 'inference.GRPCInferenceService', {
      credentials: credentials.createSsl(certs.ca, certs.key, certs.cert),
    })
    try {
      expect(await withCert.call('ServerReady')).toEqual({ ready: true })
      const response = await withCert.call<{ raw_output_contents: Buffer[] }>(
        'ModelInfer',
        addRequest('mtls', [5, 6, 7, 8]),
      )
      expect(floatsOf(response.raw_output_contents[0])).toEqual([10, 12, 14, 16])
    } finally {
      withCert.close()
    }
  })

  it('refuses a client without a certificate as UNAUTHENTICATED', async () => {
    const without = client(target(), 'grpc.health.v1.Health', {
      credentials: credentials.createSsl(certs.ca),
    })
    try {
      const refused = await without.failure('Check', {})
      expect(refused.code).toBe(status.UNAUTHENTICATED)
      expect(refused.details).toContain('client certificate')
    } finally {
      without.close()
    }
  })
})
