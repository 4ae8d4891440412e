import { copyFile, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { unreachableHint } from '../../../src/bench/targets/preflight.js'
import { type HelixDaemon, startHelixWithCls } from '../../bench/helix-daemon.js'
import { startServer } from '../../bench/servers.js'
import { tempDir } from '../../helpers/cli.js'
import { benchInProcess as bench } from './bench-in-process.js'

const load = [
  '--model',
  'cls',
  '--shape',
  'x=1,3,48,192',
  '-c',
  '2',
  '--requests',
  '12',
  '--warmup',
  '0s',
  '--json',
]

/** `helix bench` against `helix serve --tls` and `--mtls` with the certificates `helix init` made. */
describe('helix bench over TLS and mTLS', () => {
  let tls: HelixDaemon
  let mtls: HelixDaemon
  let other: { dir: string; cleanup: () => Promise<void> }
  beforeAll(async () => {
    ;[tls, mtls, other] = await Promise.all([
      startHelixWithCls({ init: true, serveArgs: ['--tls'] }),
      startHelixWithCls({ init: true, serveArgs: ['--mtls'] }),
      tempDir('helix-bench-tls-'),
    ])
  })
  afterAll(async () => {
    await Promise.all([tls?.stop(), mtls?.stop(), other?.cleanup()])
  })

  it('trusts the helix directory CA by itself and verifies every connection', async () => {
    expect(tls.url).toMatch(/^https:\/\//)
    const r = await bench(['--url', tls.url, '--dir', tls.dir, ...load])
    expect(r.exit, r.err).toBeUndefined()
    expect(r.result?.steps[0].successes).toBe(12)
    expect(r.result?.steps[0].errorCount).toBe(0)
  })

  it('refuses a server whose CA it was not given, with a hint naming --cacert', async () => {
    const r = await bench(['--url', tls.url, '--dir', other.dir, ...load])
    expect(r.exit).toBe(1)
    expect(r.err).toMatch(/Cannot reach https:\/\/127\.0\.0\.1:\d+\/v2\/models\/cls: \S*(CERT|UNABLE)\S*/)
    expect(r.err).toContain('--cacert')
  })

  it('--cacert trusts exactly that CA', async () => {
    const r = await bench([
      '--url',
      tls.url,
      '--dir',
      other.dir,
      '--cacert',
      join(tls.dir, 'certs', 'ca.crt'),
      ...load,
    ])
    expect(r.exit, r.err).toBeUndefined()
    expect(r.result?.steps[0].successes).toBe(12)
  })

  it('--mtls: the client certificate gets through; without it the server refuses', async () => {
    const certs = join(mtls.dir, 'certs')
    const ok = await bench([
      '--url',
      mtls.url,
      '--dir',
      mtls.dir,
      '--client-cert',
      join(certs, 'client.crt'),
      '--client-key',
      join(certs, 'client.key'),
      ...load,
    ])
    expect(ok.exit, ok.err).toBeUndefined()
    expect(ok.result?.steps[0].successes).toBe(12)
    const refused = await bench(['--url', mtls.url, '--dir', mtls.dir, ...load])
    expect(refused.exit).toBe(1)
    expect(refused.err).toMatch(/Cannot reach https:/)
    expect(refused.err).toContain('--client-cert')
    expect(
      refused.err
        .trim()
        .split('\n')
        .filter((l) => l.includes('Error')).length,
    ).toBeLessThanOrEqual(1)
  })

  it('streams chat tokens over TLS (the undici path) with the same trust', async () => {
    const certs = join(tls.dir, 'certs')
    const chat = await startServer({
      https: {
        key: await readFile(join(certs, 'server.key'), 'utf8'),
        cert: await readFile(join(certs, 'server.crt'), 'utf8'),
      },
    })
    try {
      expect(chat.url).toMatch(/^https:/)
      const args = [
        '--target',
        'openai-chat',
        '--url',
        chat.url,
        '--model',
        'llm',
        '-c',
        '1',
        '-n',
        '4',
        '--warmup',
        '0s',
        '--json',
      ]
      const ok = await bench([...args, '--dir', tls.dir])
      expect(ok.exit, ok.err).toBeUndefined()
      expect(ok.result?.steps[0].successes).toBe(4)
      expect(ok.result?.steps[0].stream?.interTokenLatency.count).toBe(12)
      const untrusted = await bench([...args, '--dir', other.dir])
      expect(untrusted.exit).toBe(1)
      expect(untrusted.err).toContain('--cacert')
    } finally {
      await chat.close()
    }
  })

  it('refuses TLS flags that cannot work, before connecting', async () => {
    const notPem = join(other.dir, 'not.pem')
    await writeFile(notPem, 'hello')
    const missingKey = join(other.dir, 'client.crt')
    await copyFile(join(mtls.dir, 'certs', 'client.crt'), missingKey)
    const cases: [string[], RegExp][] = [
      [['--url', 'http://127.0.0.1:1', '--cacert', notPem], /--cacert needs an https:\/\/ --url/],
      [['--url', 'http://127.0.0.1:1', '--client-key', notPem], /--client-key needs an https/],
      [['--url', tls.url, '--client-cert', missingKey], /--client-cert and --client-key go together/],
      [['--url', tls.url, '--cacert', join(other.dir, 'nope.crt')], /--cacert .*nope\.crt does not exist/],
      [['--url', tls.url, '--cacert', notPem], /--cacert .*not\.pem is not a PEM file/],
      [
        ['--url', tls.url, '--client-cert', notPem, '--client-key', notPem],
        /--client-cert .* is not a PEM file/,
      ],
    ]
    for (const [args, message] of cases) {
      const r = await bench([...args, '--model', 'cls', '--requests', '1', '--dir', other.dir])
      expect(r.exit, args.join(' ')).toBe(2)
      expect(r.err).toMatch(message)
    }
  })
})

describe('unreachableHint', () => {
  it('tells certificate trouble, a wanted client certificate and a dead server apart', () => {
    expect(unreachableHint('UNABLE_TO_VERIFY_LEAF_SIGNATURE')).toContain('--cacert')
    expect(unreachableHint('DEPTH_ZERO_SELF_SIGNED_CERT')).toContain('--cacert')
    expect(unreachableHint('ERR_TLS_CERT_ALTNAME_INVALID')).toContain('--cacert')
    expect(unreachableHint('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED')).toContain('--client-cert')
    expect(unreachableHint('ECONNREFUSED')).toContain('server is running')
    expect(unreachableHint('socket closed', { origin: 'https://h:1' })).toContain('--client-cert')
    expect(unreachableHint('socket closed', { origin: 'https://h:1', tls: { cert: 'x' } })).toContain(
      'server is running',
    )
    expect(unreachableHint('socket closed', { origin: 'http://h:1' })).toContain('server is running')
  })
})
