import { randomBytes, X509Certificate } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { request as httpRequest, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import net from 'node:net'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import tls from 'node:tls'
import { credentials as grpcCredentials, status as grpcStatus } from '@grpc/grpc-js'
import { execa, type ResultPromise } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createModelService } from '../../src/core/infer/model-service.js'
import { type GrpcServer, startGrpcServer } from '../../src/grpc/server.js'
import { loadRuntimeConfig, type ServeFlags } from '../../src/http/serve-config.js'
import { createLogger, type Daemon, startDaemon } from '../../src/http/server.js'
import { ensureCertificates } from '../../src/provision/certs/certificates.js'
import { renderArtifacts } from '../../src/provision/render/render.js'
import { parseConfig } from '../../src/shared/config.js'
import { HelixHome } from '../../src/shared/home.js'
import { client } from '../grpc/fixtures.js'
import { tempDir } from '../helpers/cli.js'
import { addModel, addToRepository } from '../helpers/onnx-models.js'
import { hasTool } from '../helpers/tools.js'
import { freePort, startNginx } from '../provision/render/nginx-run.js'

/**
 * Attacks on the transport, each refused by name: TLS downgrade (old protocols, weak suites,
 * TLS_FALLBACK_SCSV), mTLS without a certificate or with a foreign or expired one, and HTTP request
 * smuggling (CL.TE, TE.CL, TE.TE, bare LF, two Content-Length headers). The targets are real: daemons
 * (REST and gRPC faces) with the TLS options of `helix serve --tls/--mtls`, certificates from the
 * helix CA (`helix init`, ECDSA and RSA), and Debian's nginx on the nginx.conf that
 * `helix render nginx` writes, in front of a plain-HTTP daemon. Each test asserts what the attacker gets back and that a good request is served afterwards.
 */

const HAS_OPENSSL = hasTool('openssl')
const HAS_NGINX = hasTool('nginx')

const ADD_BODY = JSON.stringify({
  inputs: [
    { name: 'a', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] },
    { name: 'b', datatype: 'FP32', shape: [1, 4], data: [1, 1, 1, 1] },
  ],
})
const ADD_SUM = [2, 3, 4, 5]

/** A daemon started as `helix serve` starts it, with every request it received (method and URL). */
interface Target {
  daemon: Daemon
  port: number
  seen: string[]
  logs: string[]
}

let dir: string
let cleanup: () => Promise<void>
let home: HelixHome
let plain: Target
let tlsDaemon: Target
let mtlsDaemon: Target
const files = {
  ca: '',
  client: { cert: Buffer.alloc(0), key: Buffer.alloc(0) },
  foreign: { cert: Buffer.alloc(0), key: Buffer.alloc(0) },
  expired: { cert: Buffer.alloc(0), key: Buffer.alloc(0) },
}
let ca: Buffer

async function startTarget(flags: ServeFlags, targetHome = home): Promise<Target> {
  const config = {
    ...(await loadRuntimeConfig(targetHome, { port: 0, host: '127.0.0.1', ...flags }, {})),
    requestLog: { mode: 'all' as const, sampleRate: 0 },
  }
  const service = await createModelService({ repositoryDir: config.modelsDir, defaultDevice: 'cpu' })
  const logs: string[] = []
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(...String(chunk).split('\n').filter(Boolean))
      done()
    },
  })
  const daemon = await startDaemon(config, service, createLogger(config, sink))
  const seen: string[] = []
  daemon.app.server.on('request', (req: IncomingMessage) => seen.push(`${req.method} ${req.url}`))
  return { daemon, port: Number(new URL(daemon.url).port), seen, logs }
}

/** Runs the real openssl in dir; throws with its output when it fails. */
async function openssl(args: string[]): Promise<void> {
  await execa('openssl', args, { cwd: dir, all: true })
}

/**
 * A client certificate from a foreign CA (made here with openssl) that carries the helix CA's very
 * name, so only the signature tells them apart, and one from the helix CA that expired in 2020
 * (`openssl ca` with explicit dates, signed by certs/ca.key).
 */
async function writeAttackerCertificates(): Promise<void> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  const helixCaName = `/${new X509Certificate(ca).subject.split('\n').join('/')}`
  await openssl([
    'req',
    '-x509',
    ...ec,
    '-days',
    '2',
    '-subj',
    helixCaName,
    '-keyout',
    'foreign-ca.key',
    '-out',
    'foreign-ca.crt',
  ])
  await writeFile(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n')
  await openssl([
    'req',
    '-new',
    ...ec,
    '-subj',
    '/CN=helix-client',
    '-keyout',
    'foreign.key',
    '-out',
    'f.csr',
  ])
  await openssl([
    'x509',
    '-req',
    '-in',
    'f.csr',
    '-CA',
    'foreign-ca.crt',
    '-CAkey',
    'foreign-ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    'client.ext',
    '-out',
    'foreign.crt',
  ])
  await openssl([
    'req',
    '-new',
    ...ec,
    '-subj',
    '/CN=helix-client',
    '-keyout',
    'expired.key',
    '-out',
    'e.csr',
  ])
  await writeFile(join(dir, 'index.txt'), '')
  await writeFile(join(dir, 'serial'), '1000\n')
  await writeFile(
    join(dir, 'ca.cnf'),
    [
      '[ca]',
      'default_ca = helix',
      '[helix]',
      'database = index.txt',
      'new_certs_dir = .',
      'serial = serial',
      'default_md = sha256',
      'policy = any',
      'unique_subject = no',
      '[any]',
      'commonName = supplied',
      '[client]',
      'extendedKeyUsage = clientAuth',
      '',
    ].join('\n'),
  )
  await openssl([
    'ca',
    '-batch',
    '-config',
    'ca.cnf',
    '-cert',
    home.path('certs/ca.crt'),
    '-keyfile',
    home.path('certs/ca.key'),
    '-in',
    'e.csr',
    '-startdate',
    '20200101000000Z',
    '-enddate',
    '20200201000000Z',
    '-extensions',
    'client',
    '-notext',
    '-out',
    'expired.crt',
  ])
  for (const name of ['foreign', 'expired'] as const) {
    files[name] = {
      cert: await readFile(join(dir, `${name}.crt`)),
      key: await readFile(join(dir, `${name}.key`)),
    }
  }
  const helixCa = new X509Certificate(ca)
  expect(new X509Certificate(files.foreign.cert).issuer).toBe(helixCa.subject)
  expect(new X509Certificate(files.expired.cert).verify(helixCa.publicKey)).toBe(true)
}

beforeAll(async () => {
  ;({ dir, cleanup } = await tempDir('helix-transport-'))
  home = new HelixHome(join(dir, 'home'))
  // What `helix init` writes to certs/: a CA, a server leaf for localhost/127.0.0.1, a client leaf.
  await ensureCertificates(home, parseConfig({}))
  await addToRepository(home.path('models'), 'add', addModel())
  files.ca = home.path('certs/ca.crt')
  files.client = {
    cert: await readFile(home.path('certs/client.crt')),
    key: await readFile(home.path('certs/client.key')),
  }
  ca = await readFile(files.ca)
  plain = await startTarget({})
  tlsDaemon = await startTarget({ tls: true })
  mtlsDaemon = await startTarget({ mtls: true })
  if (HAS_OPENSSL) await writeAttackerCertificates()
}, 60_000)

afterAll(async () => {
  await Promise.all([plain, tlsDaemon, mtlsDaemon].map((t) => t?.daemon.shutdown()))
  await cleanup?.()
})

interface Answer {
  status: number
  body: string
}

/**
 * POST /v2/models/add/infer on a fresh connection (no agent), over HTTP or HTTPS (as localhost,
 * trusting the helix CA unless tlsOptions names another, with tlsOptions' client certificate).
 */
function goodRequest(
  url: string,
  tlsOptions: { cert?: Buffer; key?: Buffer; ca?: Buffer } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const target = new URL('/v2/models/add/infer', url)
    const options = {
      method: 'POST',
      agent: false,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(ADD_BODY) },
    }
    const onResponse = (res: IncomingMessage) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    }
    const req =
      target.protocol === 'https:'
        ? httpsRequest(target, { ...options, ca, servername: 'localhost', ...tlsOptions }, onResponse)
        : httpRequest(target, options, onResponse)
    req.on('error', reject)
    req.setTimeout(15_000, () => req.destroy(new Error(`no answer from ${url} within 15 s`)))
    req.end(ADD_BODY)
  })
}

function expectServed(answer: Answer): void {
  expect(answer.status, answer.body).toBe(200)
  expect((JSON.parse(answer.body) as { outputs: { data: number[] }[] }).outputs[0].data).toEqual(ADD_SUM)
}

interface SClient {
  /** The handshake completed. */
  connected: boolean
  protocol?: string
  cipher?: string
  output: string
}

/** One `openssl s_client -brief` handshake (stdin closed at once) against 127.0.0.1:port as localhost. */
async function sClient(port: number, args: string[], caFile = files.ca): Promise<SClient> {
  const result = await execa(
    'openssl',
    [
      's_client',
      '-brief',
      '-connect',
      `127.0.0.1:${port}`,
      '-servername',
      'localhost',
      '-CAfile',
      caFile,
      ...args,
    ],
    { input: '', reject: false, all: true, timeout: 15_000 },
  )
  const output = String(result.all)
  const protocol = /^Protocol version: (\S+)/m.exec(output)?.[1]
  const cipher = /^Ciphersuite: (\S+)/m.exec(output)?.[1]
  return {
    // What happens after the handshake (a gRPC port without ALPN h2 closes at once) does not count.
    connected: /^CONNECTION ESTABLISHED$/m.test(output),
    ...(protocol ? { protocol } : {}),
    ...(cipher ? { cipher } : {}),
    output,
  }
}

/** Old protocols, offered for real: SECLEVEL=0 lets this OpenSSL send TLS 1.0/1.1 hellos. */
const OLD_PROTOCOLS = [
  ['TLS 1.0', ['-tls1', '-cipher', 'DEFAULT@SECLEVEL=0']],
  ['TLS 1.1', ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0']],
] as const

/**
 * TLS 1.2 offers of suites the Mozilla intermediate profile leaves out: CBC with SHA-1, CBC with
 * SHA-2, RSA key exchange (no forward secrecy) and NULL encryption; for ECDSA and RSA certificates.
 */
const WEAK_SUITES = [
  [
    'CBC-SHA1',
    'ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:AES128-SHA:AES256-SHA',
  ],
  [
    'CBC-SHA2',
    'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384',
  ],
  ['static RSA key exchange', 'AES128-GCM-SHA256:AES256-GCM-SHA384'],
  ['NULL encryption', 'ECDHE-ECDSA-NULL-SHA:ECDHE-RSA-NULL-SHA:NULL-SHA256'],
] as const

const AEAD_ECDHE = /^ECDHE-(ECDSA|RSA)-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)$/

/** Suites this OpenSSL can no longer even offer: RC4, 3DES, export grade and anonymous key exchange. */
const UNOFFERABLE_SUITES = {
  RC4: [0x0004, 0x0005, 0xc007, 0xc011],
  '3DES': [0x000a, 0xc008, 0xc012],
  export: [0x0003, 0x0008, 0x0014],
  anonymous: [0x0018, 0x0034, 0xc018],
}
/** TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 and TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 (RFC 5289). */
const AEAD_SUITES = [0xc02b, 0xc02f]

function lengthPrefixed(bytes: number[], size: 1 | 2 | 3): number[] {
  const n = bytes.length
  const prefix = size === 1 ? [n] : size === 2 ? [n >> 8, n & 0xff] : [n >> 16, (n >> 8) & 0xff, n & 0xff]
  return [...prefix, ...bytes]
}

/**
 * A TLS 1.2 ClientHello written byte by byte (RFC 5246 7.4.1.2) offering exactly `suites`, with SNI
 * localhost, the P-256 and X25519 groups and ECDSA/RSA signature algorithms. Resolves with the
 * server's first record: a fatal alert's description, or the suite of its ServerHello.
 */
function rawHello(port: number, suites: number[]): Promise<{ alert?: number; suite?: number }> {
  const extension = (type: number, data: number[]) => [type >> 8, type & 0xff, ...lengthPrefixed(data, 2)]
  const host = [...Buffer.from('localhost')]
  const extensions = [
    ...extension(0x0000, lengthPrefixed([0, ...lengthPrefixed(host, 2)], 2)),
    ...extension(0x000a, lengthPrefixed([0x00, 0x17, 0x00, 0x1d], 2)),
    ...extension(0x000b, lengthPrefixed([0], 1)),
    ...extension(0x000d, lengthPrefixed([0x04, 0x03, 0x08, 0x04, 0x04, 0x01], 2)),
  ]
  const body = [
    0x03,
    0x03,
    ...randomBytes(32),
    0,
    ...lengthPrefixed(
      suites.flatMap((suite) => [suite >> 8, suite & 0xff]),
      2,
    ),
    1,
    0,
    ...lengthPrefixed(extensions, 2),
  ]
  const record = [0x16, 0x03, 0x01, ...lengthPrefixed([0x01, ...lengthPrefixed(body, 3)], 2)]
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(Buffer.from(record)))
    let got = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk])
      if (got.length < 5 || got.length < 5 + got.readUInt16BE(3)) return
      socket.destroy()
      if (got[0] === 0x15) resolve({ alert: got[6] })
      else if (got[0] === 0x16 && got[5] === 0x02) {
        // record header 5, handshake header 4, version 2, random 32, then the session id.
        const at = 5 + 4 + 2 + 32
        resolve({ suite: got.readUInt16BE(at + 1 + got[at]) })
      } else reject(new Error(`unexpected TLS record ${got.subarray(0, 8).toString('hex')}`))
    })
    socket.on('error', reject)
    socket.on('close', () => reject(new Error('closed without a TLS record')))
  })
}

/** Which CA a client trusts: the helix CA of the ECDSA home unless a test names another. */
interface Trust {
  caFile: string
  ca: Buffer
}

/** The TLS checks every TLS face (the daemon's own, nginx's HTTPS and gRPC ports) must pass. */
function tlsDowngradeSuite(
  name: string,
  port: () => number,
  stillServes: () => Promise<void>,
  trust: () => Trust = () => ({ caFile: files.ca, ca }),
): void {
  describe(`TLS downgrade against ${name}`, () => {
    const probe = (args: string[]) => sClient(port(), args, trust().caFile)
    for (const [label, args] of OLD_PROTOCOLS) {
      it(`a ${label} handshake is refused with protocol_version`, async () => {
        const attempt = await probe([...args])
        expect(attempt.connected, attempt.output).toBe(false)
        expect(attempt.output).toMatch(/alert protocol version/)
        await stillServes()
      })
    }

    it('a TLS 1.2 client offering only weak suites (CBC-SHA1, CBC-SHA2, RSA kx, NULL) is refused', async () => {
      for (const [label, suites] of WEAK_SUITES) {
        const attempt = await probe(['-tls1_2', '-cipher', `${suites}:@SECLEVEL=0`])
        expect(attempt.connected, `${label}: ${attempt.output}`).toBe(false)
        expect(attempt.output, label).toMatch(/alert handshake failure/)
      }
      await stillServes()
    })

    it('a TLS 1.2 hello offering only RC4, 3DES, export or anonymous suites gets handshake_failure', async () => {
      for (const [label, suites] of Object.entries(UNOFFERABLE_SUITES)) {
        expect(await rawHello(port(), suites), label).toEqual({ alert: 40 })
      }
      // The same hand-made hello with AEAD suites is answered with a ServerHello: the bytes are right.
      const accepted = await rawHello(port(), [...UNOFFERABLE_SUITES.RC4, ...AEAD_SUITES])
      expect(AEAD_SUITES).toContain(accepted.suite)
      await stillServes()
    })

    it('TLS_FALLBACK_SCSV from a TLS 1.2 client is refused with inappropriate_fallback', async () => {
      const attempt = await probe(['-tls1_2', '-fallback_scsv'])
      expect(attempt.connected, attempt.output).toBe(false)
      expect(attempt.output).toMatch(/alert inappropriate fallback/)
      await stillServes()
    })

    it('a normal client negotiates TLS 1.3; a TLS 1.2 client gets an ECDHE AEAD suite', async () => {
      const modern = await probe([])
      expect(modern.connected, modern.output).toBe(true)
      expect(modern.protocol).toBe('TLSv1.3')
      const node = await nodeHandshake(port(), { ca: trust().ca })
      expect(node.protocol).toBe('TLSv1.3')
      const legacy = await probe(['-tls1_2'])
      expect(legacy.protocol).toBe('TLSv1.2')
      expect(legacy.cipher).toMatch(AEAD_ECDHE)
      const nodeLegacy = await nodeHandshake(port(), { ca: trust().ca, maxVersion: 'TLSv1.2' })
      expect(nodeLegacy.protocol).toBe('TLSv1.2')
      expect(nodeLegacy.cipher).toMatch(AEAD_ECDHE)
      expect(node.verified && nodeLegacy.verified, 'the helix CA verifies the server certificate').toBe(true)
    })

    it('a TLS 1.2 client gets no session ticket (its key would never rotate; Mozilla intermediate turns tickets off)', async () => {
      const legacy = await nodeHandshake(port(), { ca: trust().ca, maxVersion: 'TLSv1.2' })
      expect(legacy.protocol).toBe('TLSv1.2')
      expect(legacy.ticket).toBe(false)
      await stillServes()
    })
  })
}

/** A Node TLS handshake; resolves with what was negotiated. */
function nodeHandshake(
  port: number,
  options: tls.ConnectionOptions,
): Promise<{ protocol: string | null; cipher: string; verified: boolean; ticket: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca, ...options }, () => {
      resolve({
        protocol: socket.getProtocol(),
        cipher: socket.getCipher().name,
        verified: socket.authorized,
        // A TLS 1.2 server sends its NewSessionTicket inside the handshake.
        ticket: socket.getTLSTicket() !== undefined,
      })
      socket.end()
    })
    socket.on('error', reject)
  })
}

/** A helix directory with RSA certificates (tls.key_type: rsa), made on first use. */
let rsaHome: HelixHome | undefined
async function rsaCertificates(): Promise<HelixHome> {
  if (!rsaHome) {
    rsaHome = new HelixHome(join(dir, 'rsa-home'))
    await ensureCertificates(rsaHome, parseConfig({ tls: { key_type: 'rsa' } }))
    await addToRepository(rsaHome.path('models'), 'add', addModel())
  }
  return rsaHome
}

for (const keyType of ['ecdsa', 'rsa'] as const) {
  describe.skipIf(!HAS_OPENSSL)(
    `the probes themselves: a permissive OpenSSL server accepts every offer (${keyType})`,
    () => {
      // Without this, a refusal below could mean that the client never offered what it claims to offer.
      let server: ResultPromise | undefined
      let port: number
      beforeAll(async () => {
        const certs = keyType === 'ecdsa' ? home : await rsaCertificates()
        port = await freePort()
        server = execa(
          'openssl',
          [
            's_server',
            '-accept',
            `127.0.0.1:${port}`,
            '-cert',
            certs.path('certs/server.crt'),
            '-key',
            certs.path('certs/server.key'),
            '-cipher',
            'ALL:eNULL:@SECLEVEL=0',
            '-min_protocol',
            'TLSv1',
            '-max_protocol',
            'TLSv1.2',
            '-www',
          ],
          { reject: false, stdin: 'ignore' },
        )
        await waitForPort(port)
      })
      afterAll(async () => {
        server?.kill()
        await server
      })

      it('TLS 1.0, TLS 1.1, each weak suite group and a TLS 1.2 fallback complete a handshake', async () => {
        for (const [label, args] of OLD_PROTOCOLS) {
          const attempt = await sClient(port, [...args])
          expect(attempt.connected, `${label}: ${attempt.output}`).toBe(true)
          expect(attempt.protocol).toBe(label === 'TLS 1.0' ? 'TLSv1' : 'TLSv1.1')
        }
        // RSA key exchange needs an RSA certificate: with an ECDSA one that group cannot negotiate.
        for (const [label, suites] of WEAK_SUITES) {
          if (keyType === 'ecdsa' && label === 'static RSA key exchange') continue
          const attempt = await sClient(port, ['-tls1_2', '-cipher', `${suites}:@SECLEVEL=0`])
          expect(attempt.connected, `${label}: ${attempt.output}`).toBe(true)
        }
        const fallback = await sClient(port, ['-tls1_2', '-fallback_scsv'])
        expect(fallback.connected, fallback.output).toBe(true)
      })
    },
  )
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1')
      socket.once('connect', () => resolve(true)).once('error', () => resolve(false))
      setTimeout(() => socket.destroy(), 200)
    })
    if (ok) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}`)
}

describe.skipIf(!HAS_OPENSSL)("the daemon's own TLS (helix serve --tls)", () => {
  tlsDowngradeSuite(
    'the daemon',
    () => tlsDaemon.port,
    async () => expectServed(await goodRequest(tlsDaemon.daemon.url)),
  )
})

describe.skipIf(!HAS_OPENSSL)("the daemon's own TLS with RSA certificates (tls.key_type: rsa)", () => {
  let rsaDaemon: Target
  let trust: Trust
  beforeAll(async () => {
    const rsa = await rsaCertificates()
    trust = { caFile: rsa.path('certs/ca.crt'), ca: await readFile(rsa.path('certs/ca.crt')) }
    rsaDaemon = await startTarget({ tls: true }, rsa)
  })
  afterAll(async () => rsaDaemon?.daemon.shutdown())
  tlsDowngradeSuite(
    'the daemon (RSA)',
    () => rsaDaemon.port,
    async () => expectServed(await goodRequest(rsaDaemon.daemon.url, { ca: trust.ca })),
    () => trust,
  )
})

/** The daemon's gRPC face as `helix serve --tls/--mtls` starts it, on its own model service. */
async function startGrpcFace(flags: ServeFlags): Promise<{ server: GrpcServer; close: () => Promise<void> }> {
  const config = await loadRuntimeConfig(home, { port: 0, host: '127.0.0.1', ...flags }, {})
  const service = await createModelService({ repositoryDir: config.modelsDir, defaultDevice: 'cpu' })
  const quiet = { debug() {}, info() {}, warn() {}, error() {} }
  const server = await startGrpcServer(
    {
      host: config.host,
      port: 0,
      maxMessageBytes: config.grpc?.maxMessageBytes ?? 64 * 1024 * 1024,
      ...(config.tls ? { tls: config.tls } : {}),
    },
    { service, logger: quiet },
  )
  return {
    server,
    close: async () => {
      await server.shutdown(1000)
      await service.close()
    },
  }
}

/** ServerLive over gRPC with the helix CA trusted and a client certificate (or none). */
async function serverLive(target: string, certificate: { cert?: Buffer; key?: Buffer } = {}) {
  const grpcClient = client(target, 'inference.GRPCInferenceService', {
    credentials: grpcCredentials.createSsl(ca, certificate.key ?? null, certificate.cert ?? null),
  })
  try {
    return await grpcClient.call('ServerLive', {}, { deadline: new Date(Date.now() + 5000) })
  } finally {
    grpcClient.close()
  }
}

describe.skipIf(!HAS_OPENSSL)("the daemon's gRPC face over TLS and mTLS", () => {
  let tlsFace: Awaited<ReturnType<typeof startGrpcFace>>
  let mtlsFace: Awaited<ReturnType<typeof startGrpcFace>>
  beforeAll(async () => {
    tlsFace = await startGrpcFace({ tls: true })
    mtlsFace = await startGrpcFace({ mtls: true })
  })
  afterAll(async () => {
    await tlsFace?.close()
    await mtlsFace?.close()
  })

  tlsDowngradeSuite(
    'the daemon (gRPC)',
    () => tlsFace.server.port,
    async () => expect(await serverLive(tlsFace.server.target)).toEqual({ live: true }),
  )

  it('mTLS: without a client certificate, or with a foreign-CA or expired one, calls fail UNAVAILABLE; the helix one is served', async () => {
    for (const certificate of [{}, files.foreign, files.expired]) {
      await expect(serverLive(mtlsFace.server.target, certificate)).rejects.toMatchObject({
        code: grpcStatus.UNAVAILABLE,
      })
    }
    expect(await serverLive(mtlsFace.server.target, files.client)).toEqual({ live: true })
  })
})

/** A request with a client certificate (or none): what the client got, or the error it failed with. */
async function attempt(
  url: string,
  clientCertificate: { cert?: Buffer; key?: Buffer },
): Promise<Answer | { error: string }> {
  try {
    return await goodRequest(url, clientCertificate)
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException
    return { error: `${code ?? ''} ${message}` }
  }
}

describe.skipIf(!HAS_OPENSSL)("the daemon's own mTLS (helix serve --mtls)", () => {
  // Node lets the handshake finish and then drops a connection whose certificate does not verify,
  // before any request is read: the client sees the connection reset, never an HTTP answer. Without
  // a certificate OpenSSL refuses in the handshake itself (TLS 1.3 alert certificate_required).
  const refused: [string, () => { cert?: Buffer; key?: Buffer }, RegExp][] = [
    ['no client certificate', () => ({}), /CERTIFICATE_REQUIRED|ECONNRESET/],
    ['a client certificate from a foreign CA', () => files.foreign, /ECONNRESET|socket hang up/],
    ['an expired client certificate from the helix CA', () => files.expired, /ECONNRESET|socket hang up/],
  ]
  for (const [label, certificate, error] of refused) {
    it(`${label}: the connection is refused and no request reaches a route`, async () => {
      const before = mtlsDaemon.seen.length
      const got = await attempt(mtlsDaemon.daemon.url, certificate())
      expect(got).toEqual({ error: expect.stringMatching(error) })
      expect(mtlsDaemon.seen.length, 'no request reached the routes').toBe(before)
      expectServed(await goodRequest(mtlsDaemon.daemon.url, files.client))
    })
  }

  it('the helix client certificate gets 200', async () => {
    const before = mtlsDaemon.seen.length
    expectServed(await goodRequest(mtlsDaemon.daemon.url, files.client))
    expect(mtlsDaemon.seen.slice(before)).toEqual(['POST /v2/models/add/infer'])
  })
})

/** The smuggled request: a daemon that ever sees this URL was desynchronised. */
const SMUGGLED = 'GET /v2/models/smuggled/ready HTTP/1.1\r\nHost: localhost\r\n\r\n'
const POST = 'POST /v2/models/add/infer HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n'

/** CL.TE-shaped: by Content-Length the smuggled request is body; by chunked it follows a 0 chunk. */
function clte(framing: string): string {
  const body = `0\r\n\r\n${SMUGGLED}`
  return `${POST}Content-Length: ${body.length}\r\n${framing}\r\n${body}`
}

interface Smuggling {
  name: string
  payload: string
  /** What nginx answers the attacker: 400, or 501 for a coding it does not implement. */
  nginx: 400 | 501
}

const SMUGGLING: Smuggling[] = [
  { name: 'CL.TE', payload: clte('Transfer-Encoding: chunked\r\n'), nginx: 400 },
  {
    name: 'TE.CL',
    // By chunked the smuggled request is one chunk; by Content-Length (4: the size line) it follows.
    payload: `${POST}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`,
    nginx: 400,
  },
  {
    name: 'TE.TE: Transfer-Encoding: xchunked',
    payload: clte('Transfer-Encoding: xchunked\r\n'),
    nginx: 501,
  },
  {
    name: 'TE.TE: a space before the colon',
    payload: clte('Transfer-Encoding : chunked\r\n'),
    nginx: 400,
  },
  {
    name: 'TE.TE: chunked folded onto a continuation line (obs-fold)',
    payload: clte('Transfer-Encoding:\r\n chunked\r\n'),
    nginx: 400,
  },
  {
    name: 'TE.TE: chunked behind another coding',
    payload: clte('Transfer-Encoding: identity, chunked\r\n'),
    nginx: 501,
  },
  {
    name: 'TE.TE: two Transfer-Encoding headers',
    payload: clte('Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n'),
    nginx: 400,
  },
  {
    name: 'a bare LF hiding Transfer-Encoding in another header',
    payload: clte('X-Padding: a\nTransfer-Encoding: chunked\r\n'),
    nginx: 400,
  },
  {
    name: 'two Content-Length headers',
    payload: `${POST}Content-Length: ${SMUGGLED.length}\r\nContent-Length: 0\r\n\r\n${SMUGGLED}`,
    nginx: 400,
  },
]

interface Exchange {
  /** The status of every response that came back on the connection, in order. */
  statuses: number[]
  text: string
}

/**
 * Writes a raw request on one connection (TLS to nginx as localhost, or plain TCP) and collects what
 * comes back until the peer closes or stays quiet for idleMs after answering.
 */
function exchange(target: { port: number; tls: boolean }, payload: string, idleMs = 800): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = target.tls
      ? tls.connect({ host: '127.0.0.1', port: target.port, servername: 'localhost', ca })
      : net.connect(target.port, '127.0.0.1')
    let text = ''
    let idle: NodeJS.Timeout | undefined
    const finish = () => {
      clearTimeout(idle)
      clearTimeout(giveUp)
      socket.destroy()
      const statuses = [...text.matchAll(/^HTTP\/1\.[01] (\d{3})/gm)].map((m) => Number(m[1]))
      resolve({ statuses, text })
    }
    const giveUp = setTimeout(finish, 10_000)
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1')
      clearTimeout(idle)
      idle = setTimeout(finish, idleMs)
    })
    socket.on('close', finish)
    socket.on('error', () => {})
    socket.once(target.tls ? 'secureConnect' : 'connect', () => socket.write(payload, 'latin1'))
  })
}

/** Real nginx on a config rendered by `helix render nginx` (the service behind the command). */
interface Front {
  https: number
  grpc: number
  prefix: string
  stop: () => Promise<void>
}

async function startFront(name: string, mtls: boolean): Promise<Front> {
  const https = await freePort()
  const grpc = await freePort()
  const config = parseConfig({
    nginx: {
      upstreams: [`127.0.0.1:${plain.port}`],
      http_port: await freePort(),
      https_port: https,
      grpc_port: grpc,
      mtls,
      // The attacks and the good requests after each come from loopback, well under these.
      rate_per_ip: 1000,
      rate_per_key: 1000,
    },
  })
  await renderArtifacts(home, config, ['nginx'], { force: true })
  const conf = join(home.nginxDir, `${name}.conf`)
  await writeFile(conf, await readFile(join(home.nginxDir, 'nginx.conf')))
  const prefix = join(dir, name)
  const { stop } = await startNginx(prefix, conf, https)
  await waitForPort(grpc)
  return { https, grpc, prefix, stop }
}

describe.skipIf(!HAS_OPENSSL || !HAS_NGINX)('the rendered nginx', () => {
  let front: Front
  let mtlsFront: Front
  beforeAll(async () => {
    front = await startFront('nginx-tls', false)
    mtlsFront = await startFront('nginx-mtls', true)
  }, 30_000)
  afterAll(async () => {
    await front?.stop()
    await mtlsFront?.stop()
  })

  const throughNginx = async () => expectServed(await goodRequest(`https://localhost:${front.https}`))
  tlsDowngradeSuite('nginx (HTTPS)', () => front.https, throughNginx)
  tlsDowngradeSuite('nginx (gRPC over TLS)', () => front.grpc, throughNginx)

  describe('mTLS at nginx (nginx.mtls: ssl_verify_client on)', () => {
    const url = () => `https://localhost:${mtlsFront.https}`
    const accessLog = async () =>
      (await readFile(join(mtlsFront.prefix, 'access.log'), 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { status: number; client_verify: string })
    /**
     * The first line after the `known` ones with this status: nginx writes a line after its answer, so
     * the previous test's good request may be logged after this test counted the lines.
     */
    const nextLogEntry = async (known: number, status: number) => {
      for (let i = 0; i < 200; i++) {
        const found = (await accessLog()).slice(known).find((e) => e.status === status)
        if (found) return found
        await new Promise((r) => setTimeout(r, 50))
      }
      throw new Error(`nginx logged no ${status} line for the request`)
    }

    const refused: [string, () => { cert?: Buffer; key?: Buffer }, RegExp, RegExp][] = [
      ['no client certificate', () => ({}), /No required SSL certificate was sent/, /^NONE$/],
      [
        'a client certificate from a foreign CA',
        () => files.foreign,
        /The SSL certificate error/,
        /^FAILED:/,
      ],
      [
        'an expired client certificate from the helix CA',
        () => files.expired,
        /The SSL certificate error/,
        /^FAILED:certificate has expired$/,
      ],
    ]
    for (const [label, certificate, page, verify] of refused) {
      it(`${label}: nginx answers 400 and the daemon sees nothing`, async () => {
        const before = plain.seen.length
        const logged = (await accessLog()).length
        const got = await attempt(url(), certificate())
        expect(got).toMatchObject({ status: 400, body: expect.stringMatching(page) })
        expect((got as Answer).body).not.toContain('outputs')
        expect(plain.seen.length, 'no request reached the daemon').toBe(before)
        expect(await nextLogEntry(logged, 400)).toMatchObject({
          status: 400,
          client_verify: expect.stringMatching(verify),
        })
        expectServed(await goodRequest(url(), files.client))
      })
    }

    it('the helix client certificate gets 200 from the daemon behind nginx', async () => {
      const before = plain.seen.length
      const logged = (await accessLog()).length
      expectServed(await goodRequest(url(), files.client))
      expect(plain.seen.slice(before)).toEqual(['POST /v2/models/add/infer'])
      expect(await nextLogEntry(logged, 200)).toMatchObject({ status: 200, client_verify: 'SUCCESS' })
    })
  })

  describe('request smuggling through nginx', () => {
    for (const attack of SMUGGLING) {
      it(`${attack.name}: nginx answers ${attack.nginx}, the smuggled request never reaches the daemon`, async () => {
        const before = plain.seen.length
        const got = await exchange({ port: front.https, tls: true }, attack.payload)
        expect(got.statuses, got.text).toEqual([attack.nginx])
        expect(got.text, "nginx's own error page, not the daemon's").toContain('<center>nginx</center>')
        const victims = await Promise.all(
          [0, 1, 2].map(() => goodRequest(`https://localhost:${front.https}`)),
        )
        for (const victim of victims) expectServed(victim)
        const reached = plain.seen.slice(before)
        expect(reached.filter((r) => r.includes('smuggled'))).toEqual([])
        expect(reached, 'only the good requests reached the daemon').toEqual(
          Array(3).fill('POST /v2/models/add/infer'),
        )
        expect(plain.logs.join('\n')).not.toContain('smuggled')
      })
    }
  })
})

describe('request smuggling straight at the daemon (Node HTTP parser, no nginx)', () => {
  for (const attack of SMUGGLING) {
    it(`${attack.name}: the daemon answers 400 and never runs the smuggled request`, async () => {
      const before = plain.seen.length
      const got = await exchange({ port: plain.port, tls: false }, attack.payload)
      expect(got.statuses, got.text).toEqual([400])
      const victims = await Promise.all([0, 1, 2].map(() => goodRequest(plain.daemon.url)))
      for (const victim of victims) expectServed(victim)
      const reached = plain.seen.slice(before)
      expect(reached).toEqual(Array(3).fill('POST /v2/models/add/infer'))
      expect(plain.logs.join('\n')).not.toContain('smuggled')
    })
  }
})
