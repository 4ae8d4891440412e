import { once } from 'node:events'
import { readFile, writeFile } from 'node:fs/promises'
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hostPlacement, nginxValues, planNginx } from '../../../src/provision/render/nginx-values.js'
import { renderArtifacts } from '../../../src/provision/render/render.js'
import { type HelixConfig, parseConfig } from '../../../src/shared/config.js'
import { HelixHome } from '../../../src/shared/home.js'
import { renderTemplate } from '../../../src/shared/templates.js'
import { tempDir } from '../../helpers/cli.js'
import { hasTool } from '../../helpers/tools.js'
import { freePort, nginxAtLeast, nginxTest, startNginx } from './nginx-run.js'
import { writeSelfSignedCerts } from './self-signed.js'

const MOZILLA_CIPHERS =
  'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305'

describe('nginx.conf content', () => {
  const home = new HelixHome('/srv/helix')
  const conf = (settings: Record<string, unknown> = {}) => planNginx(home, parseConfig(settings))[0].data

  it('follows the Mozilla intermediate TLS profile with HSTS', () => {
    const text = conf()
    expect(text).toContain('ssl_protocols TLSv1.2 TLSv1.3;')
    expect(text).toContain(`ssl_ciphers ${MOZILLA_CIPHERS};`)
    expect(text).toContain('ssl_prefer_server_ciphers off;')
    expect(text).toContain('ssl_session_cache shared:MozSSL:10m;')
    expect(text).toContain('ssl_session_timeout 1d;')
    expect(text).toContain('ssl_session_tickets off;')
    expect(text).toContain('add_header Strict-Transport-Security "max-age=63072000" always;')
    expect(text).toContain('ssl_certificate /srv/helix/certs/server.crt;')
    expect(text).toContain('ssl_certificate_key /srv/helix/certs/server.key;')
    expect(text).not.toContain('ssl_verify_client')
  })

  it('balances over every upstream with keepalive, and limits per IP and per API key', () => {
    const text = conf({
      nginx: { upstreams: ['10.0.0.5:8080', '[::1]:9000', 'daemon-2.internal:8080'], rate_per_ip: 7 },
    })
    expect(text).toContain('server 10.0.0.5:8080 max_fails=3 fail_timeout=10s;')
    expect(text).toContain('server [::1]:9000 max_fails=3 fail_timeout=10s;')
    expect(text).toContain('server daemon-2.internal:8080 max_fails=3 fail_timeout=10s;')
    expect(text).toMatch(/keepalive \d+;/)
    expect(text).toContain('proxy_http_version 1.1;')
    expect(text).toContain('limit_req_zone $binary_remote_addr zone=helix_per_ip:10m rate=7r/s;')
    expect(text).toContain('limit_req_zone $http_authorization zone=helix_per_key:10m rate=100r/s;')
    expect(text).toContain('limit_req_status 429;')
    expect(text).toContain('client_max_body_size 64m;')
    expect(text).toContain('log_format helix_json escape=json')
    for (const route of ['/v2', '/v1', '/auth', '/docs', '= /openapi.json', '/.well-known', '= /metrics']) {
      expect(text).toContain(`location ${route} {`)
    }
  })

  it('adds mTLS, IPv6 listeners and TLS to the daemon when configured', () => {
    const text = conf({ nginx: { mtls: true, ipv6: true }, server: { mtls: true } })
    expect(text).toContain('ssl_client_certificate /srv/helix/certs/ca.crt;')
    expect(text).toContain('ssl_verify_client on;')
    expect(text).toContain('listen [::]:443 ssl;')
    expect(text).toContain('proxy_pass https://helix_daemon;')
    expect(text).toContain('proxy_ssl_certificate /srv/helix/certs/client.crt;')
  })

  it("proxies gRPC on its own HTTP/2 TLS port to each daemon's gRPC port", () => {
    const text = conf()
    expect(text).toContain('listen 8444 ssl http2;')
    expect(text).toContain('upstream helix_grpc {')
    // The daemon's gRPC face defaults to its REST port + 1.
    expect(text).toContain('server 127.0.0.1:8081 max_fails=3 fail_timeout=10s;')
    expect(text).toContain('grpc_pass grpc://helix_grpc;')
    expect(text).not.toContain('grpc_ssl_')
    // The same TLS profile on both TLS servers.
    expect(text.split(`ssl_ciphers ${MOZILLA_CIPHERS};`)).toHaveLength(3)
    expect(text.split('ssl_protocols TLSv1.2 TLSv1.3;')).toHaveLength(3)
    // One message of server.grpc.max_message_bytes (64 MiB) and its 5-byte prefix; streams unbounded.
    expect(text).toContain(`client_max_body_size ${64 * 1024 * 1024 + 5};`)
    expect(text).toMatch(
      /location = \/inference\.GRPCInferenceService\/ModelStreamInfer \{[^}]*client_max_body_size 0;[^}]*grpc_read_timeout 3600s;/,
    )
    expect(text).toContain('grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;')
    expect(text).toContain('grpc_set_header X-Real-IP $remote_addr;')
    expect(text).toContain('grpc_read_timeout 300s;')
    expect(text).toContain('grpc_send_timeout 3600s;')
    expect(text).toContain('error_page 502 503 504 = /helix.grpc.errors/unavailable;')
    expect(text).toContain('add_header grpc-status 14;')
    expect(text).toContain('access_log access.log helix_grpc_json;')
  })

  it('follows server.grpc.port, nginx.grpc_port and nginx.grpc_upstreams', () => {
    const upstreams = ['10.0.0.5:8080', '[::1]:9000', 'daemon-2.internal:8080']
    const derived = conf({
      nginx: { upstreams, grpc_port: 9443 },
      server: { grpc: { max_message_bytes: 4096 } },
    })
    expect(derived).toContain('listen 9443 ssl http2;')
    expect(derived).toContain('server 10.0.0.5:8081 max_fails')
    expect(derived).toContain('server [::1]:9001 max_fails')
    expect(derived).toContain('server daemon-2.internal:8081 max_fails')
    expect(derived).toContain('client_max_body_size 4101;')
    const fixed = conf({ nginx: { upstreams }, server: { grpc: { port: 7000 } } })
    expect(fixed).toContain('server 10.0.0.5:7000 max_fails')
    expect(fixed).toContain('server [::1]:7000 max_fails')
    const listed = conf({ nginx: { upstreams, grpc_upstreams: ['10.0.0.9:50051'] } })
    expect(listed.match(/^ {4}server .*:50051 max_fails/gm)).toEqual(['    server 10.0.0.9:50051 max_fails'])
    expect(() => conf({ nginx: { grpc_upstreams: ['10.0.0.9:50051; }'] } })).toThrow(
      expect.objectContaining({ code: 'INVALID_UPSTREAM' }),
    )
    expect(() => conf({ nginx: { grpc_port: 443 } })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', exitCode: 2 }),
    )
  })

  it('verifies a TLS daemon over grpcs and asks gRPC clients for certificates under mTLS', () => {
    const text = conf({ nginx: { mtls: true, ipv6: true }, server: { mtls: true } })
    expect(text).toContain('grpc_pass grpcs://helix_grpc;')
    expect(text).toContain('grpc_ssl_trusted_certificate /srv/helix/certs/ca.crt;')
    expect(text).toContain('grpc_ssl_verify on;')
    expect(text).toContain('grpc_ssl_name localhost;')
    expect(text).toContain('grpc_ssl_certificate /srv/helix/certs/client.crt;')
    expect(text).toContain('grpc_ssl_certificate_key /srv/helix/certs/client.key;')
    expect(text).toContain('listen [::]:8444 ssl http2;')
    expect(text.split('ssl_verify_client on;')).toHaveLength(3)
    expect(text).toContain('error_page 495 496 = /helix.grpc.errors/unauthenticated;')
  })

  it('leaves gRPC out when the daemons serve none', () => {
    const text = conf({ server: { grpc: { enabled: false } } })
    expect(text).not.toContain('grpc')
    expect(text).toContain('upstream helix_daemon {')
  })

  it('refuses values that would change the meaning of the file', () => {
    expect(() => conf({ nginx: { upstreams: ['127.0.0.1:8080; }'] } })).toThrow(
      expect.objectContaining({ code: 'INVALID_UPSTREAM', exitCode: 2 }),
    )
    expect(() => conf({ nginx: { metrics_allow: ['all; allow 0.0.0.0/0'] } })).toThrow(
      expect.objectContaining({ code: 'INVALID_ALLOW' }),
    )
    expect(() => conf({ domain: 'x; return 200' })).toThrow(expect.objectContaining({ code: 'INVALID_NAME' }))
  })
})

describe.skipIf(!hasTool('nginx') || !hasTool('openssl'))('nginx -t', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let home: HelixHome

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    home = new HelixHome(join(dir, 'h'))
    await writeSelfSignedCerts(home.certsDir)
  })
  afterAll(() => cleanup())

  it.each([
    ['plain', {}],
    ['mTLS', { nginx: { mtls: true } }],
    [
      'TLS to the daemon',
      { server: { mtls: true }, nginx: { upstreams: ['127.0.0.1:8080', '127.0.0.1:8082'] } },
    ],
    ['IPv6 and a fixed gRPC port', { nginx: { ipv6: true }, server: { grpc: { port: 50051 } } }],
    ['without gRPC', { server: { grpc: { enabled: false } } }],
  ])('accepts the generated file (%s) with a temp prefix', async (name, settings) => {
    const config = parseConfig(settings)
    await renderArtifacts(home, config, ['nginx'], { force: true })
    const text = await readFile(join(home.nginxDir, 'nginx.conf'), 'utf8')
    expect(text.includes('grpc_pass grpc')).toBe(config.server.grpc.enabled)
    const result = await nginxTest(
      join(dir, `prefix-${name.replaceAll(' ', '-')}`),
      join(home.nginxDir, 'nginx.conf'),
    )
    expect(result.stderr).toContain('test is successful')
    expect(result.exitCode).toBe(0)
  })

  it('accepts the container variant used by compose (logs to stdout/stderr, worker user)', async () => {
    const values = nginxValues(parseConfig({}), {
      prefix: '/etc/nginx/',
      // Debian's name for the unprivileged web user (the official image has "nginx").
      user: 'www-data',
      certsDir: home.certsDir,
      serverKey: join(home.certsDir, 'server.key'),
      upstreams: ['helix:8080'],
      grpcUpstreams: ['helix:8081'],
      grpcPort: 8444,
      http2: 'directive',
      httpPort: 80,
      httpsPort: 443,
      logs: { error: 'stderr', access: '/dev/stdout' },
    })
    const file = join(dir, 'container-nginx.conf')
    let text = renderTemplate('nginx/nginx.conf.eta', values)
    expect(text).toContain('user www-data;')
    expect(text).toContain('access_log /dev/stdout helix_json;')
    expect(text).toMatch(/listen 8444 ssl;\n {4}http2 on;/)
    // "helix" only resolves inside the compose network, and nginx -t resolves upstream names.
    text = text
      .replace('server helix:8080', 'server 127.0.0.1:8080')
      .replace('server helix:8081', 'server 127.0.0.1:8081')
    // The compose image is nginx 1.27; an nginx here older than 1.25.1 knows only `listen … http2`.
    if (!(await nginxAtLeast(1, 25, 1))) {
      text = text.replace(/listen 8444 ssl;\n {4}http2 on;/, 'listen 8444 ssl http2;')
    }
    await writeFile(file, text)
    const result = await nginxTest(join(dir, 'prefix-container'), file)
    expect(result.stderr).toContain('test is successful')
  })

  it('rejects a broken file, so the checks above can fail', async () => {
    const file = join(dir, 'broken.conf')
    const text = await readFile(join(home.nginxDir, 'nginx.conf'), 'utf8')
    await writeFile(file, text.replace('ssl_session_tickets off;', 'ssl_session_tickets maybe;'))
    const result = await nginxTest(join(dir, 'prefix-broken'), file)
    expect(result.exitCode).not.toBe(0)
  })
})

interface Seen {
  path: string
  headers: IncomingMessage['headers']
}

/** One HTTPS request through nginx, trusting the throwaway certificate. */
function get(
  url: string,
  options: { ca?: Buffer; cert?: Buffer; key?: Buffer; headers?: Record<string, string> } = {},
) {
  return new Promise<{ status: number; headers: IncomingMessage['headers']; body: string }>(
    (resolve, reject) => {
      const send = url.startsWith('https') ? httpsRequest : httpRequest
      const req = send(url, { ...options, servername: 'localhost' }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk) => {
          body += chunk
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
      })
      req.on('error', reject)
      req.end()
    },
  )
}

describe.skipIf(!hasTool('nginx') || !hasTool('openssl'))('nginx in front of a daemon', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let home: HelixHome
  let upstream: Server
  let stopNginx: () => Promise<void>
  let ca: Buffer
  let httpsPort: number
  let httpPort: number
  const seen: Seen[] = []
  let releaseStream: () => void = () => {}

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    home = new HelixHome(join(dir, 'h'))
    await writeSelfSignedCerts(home.certsDir)
    ca = await readFile(join(home.certsDir, 'ca.crt'))
    upstream = createServer((req, res) => {
      seen.push({ path: req.url ?? '', headers: req.headers })
      if (req.url === '/v1/chat/completions') {
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.write('data: first\n\n')
        releaseStream = () => res.end('data: [DONE]\n\n')
        return
      }
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ from: 'upstream', path: req.url }))
    })
    upstream.listen(0, '127.0.0.1')
    await once(upstream, 'listening')
    httpsPort = await freePort()
    httpPort = await freePort()
    const config: HelixConfig = parseConfig({
      nginx: {
        upstreams: [`127.0.0.1:${(upstream.address() as { port: number }).port}`],
        http_port: httpPort,
        https_port: httpsPort,
        // Loopback is not allowed: the test's own requests must be refused /metrics.
        metrics_allow: ['10.9.8.7', '192.168.0.0/16'],
        rate_per_ip: 20,
      },
    })
    await renderArtifacts(home, config, ['nginx'])
    ;({ stop: stopNginx } = await startNginx(
      join(dir, 'prefix'),
      join(home.nginxDir, 'nginx.conf'),
      httpsPort,
    ))
  })
  afterAll(async () => {
    await stopNginx?.()
    upstream?.close()
    await cleanup()
  })

  it('terminates TLS and proxies to the upstream with forwarding headers and HSTS', async () => {
    const res = await get(`https://localhost:${httpsPort}/v2/health/ready`, { ca })
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toEqual({ from: 'upstream', path: '/v2/health/ready' })
    expect(res.headers['strict-transport-security']).toBe('max-age=63072000')
    const request = seen.find((s) => s.path === '/v2/health/ready')!
    expect(request.headers['x-forwarded-proto']).toBe('https')
    expect(request.headers['x-forwarded-for']).toBe('127.0.0.1')
  })

  it('refuses /metrics to addresses outside the allowlist', async () => {
    const res = await get(`https://localhost:${httpsPort}/metrics`, { ca })
    expect(res.status).toBe(403)
    expect(seen.some((s) => s.path === '/metrics')).toBe(false)
  })

  it('redirects plain HTTP to HTTPS on the configured port', async () => {
    const res = await get(`http://127.0.0.1:${httpPort}/v2/models?x=1`)
    expect(res.status).toBe(301)
    expect(res.headers.location).toBe(`https://127.0.0.1:${httpsPort}/v2/models?x=1`)
  })

  it('answers 404 for paths outside the API', async () => {
    const res = await get(`https://localhost:${httpsPort}/internal/admin`, { ca })
    expect(res.status).toBe(404)
    expect(JSON.parse(res.body)).toEqual({ error: 'not found' })
  })

  it('streams Server-Sent Events on /v1 without buffering', async () => {
    const first = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(
        `https://localhost:${httpsPort}/v1/chat/completions`,
        { ca, servername: 'localhost' },
        (res) => {
          res.setEncoding('utf8')
          // The upstream holds the response open: this chunk can only arrive if nginx does not buffer.
          res.once('data', (chunk: string) => {
            resolve(chunk)
            releaseStream()
          })
        },
      )
      req.on('error', reject)
      req.end()
    })
    expect(first).toBe('data: first\n\n')
  })

  it('answers 429 when one client exceeds its rate', async () => {
    const statuses = await Promise.all(
      Array.from({ length: 60 }, () =>
        get(`https://localhost:${httpsPort}/v2/health/live`, { ca }).then((r) => r.status),
      ),
    )
    expect(statuses).toContain(200)
    expect(statuses).toContain(429)
    const log = await readFile(join(dir, 'prefix', 'access.log'), 'utf8')
    const entries = log
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { status: number; uri: string })
    expect(entries.some((e) => e.status === 429 && e.uri === '/v2/health/live')).toBe(true)
  })
})

describe.skipIf(!hasTool('nginx') || !hasTool('openssl'))('nginx with mTLS', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let stopNginx: () => Promise<void>
  let httpsPort: number
  let certs: string
  let upstream: Server

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    const home = new HelixHome(join(dir, 'h'))
    certs = home.certsDir
    await writeSelfSignedCerts(certs)
    upstream = createServer((_req, res) => res.end('ok'))
    upstream.listen(0, '127.0.0.1')
    await once(upstream, 'listening')
    httpsPort = await freePort()
    const config = parseConfig({
      nginx: {
        upstreams: [`127.0.0.1:${(upstream.address() as { port: number }).port}`],
        http_port: await freePort(),
        https_port: httpsPort,
        mtls: true,
      },
    })
    expect(hostPlacement(home, config).prefix).toBe(home.nginxDir)
    await renderArtifacts(home, config, ['nginx'])
    ;({ stop: stopNginx } = await startNginx(
      join(dir, 'prefix'),
      join(home.nginxDir, 'nginx.conf'),
      httpsPort,
    ))
  })
  afterAll(async () => {
    await stopNginx?.()
    upstream?.close()
    await cleanup()
  })

  it('lets a client with a certificate from the CA through and refuses one without', async () => {
    const ca = await readFile(join(certs, 'ca.crt'))
    const withCert = await get(`https://localhost:${httpsPort}/v2/health/ready`, {
      ca,
      cert: await readFile(join(certs, 'client.crt')),
      key: await readFile(join(certs, 'client.key')),
    })
    expect(withCert.status).toBe(200)
    expect(withCert.body).toBe('ok')
    const without = await get(`https://localhost:${httpsPort}/v2/health/ready`, { ca })
    expect(without.status).toBe(400)
  })
})
