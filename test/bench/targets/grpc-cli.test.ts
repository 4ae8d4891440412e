import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BenchResult } from '../../../src/bench/types.js'
import { benchInProcess as bench } from '../../commands/bench/bench-in-process.js'
import { runHelix, tempDir } from '../../helpers/cli.js'
import { type HelixDaemon, startHelixWithCls } from '../helix-daemon.js'

const cls = ['--model', 'cls', '--shape', 'x=1,3,48,192']

async function grpcTarget(dir: string): Promise<string> {
  const record = JSON.parse(await readFile(join(dir, 'data', 'daemon.json'), 'utf8')) as {
    grpc: { target: string; tls: boolean }
  }
  return record.grpc.target
}

/** The built `helix bench` against the gRPC face of a real `helix serve` running the PP-OCR cls model. */
describe('helix bench --target grpc and grpc-stream against helix serve', () => {
  let daemon: HelixDaemon
  let target: string
  beforeAll(async () => {
    daemon = await startHelixWithCls()
    target = await grpcTarget(daemon.dir)
  })
  afterAll(async () => {
    await daemon?.stop()
  })

  it('finds the gRPC face in data/daemon.json and checks every ModelInfer answer', async () => {
    const r = await runHelix([
      'bench',
      '--target',
      'grpc',
      '--dir',
      daemon.dir,
      ...cls,
      '-c',
      '1,8',
      '-n',
      '40',
      '--warmup',
      '200ms',
      '--json',
    ])
    expect(r.exitCode, r.stderr).toBe(0)
    const result = JSON.parse(r.stdout) as BenchResult
    expect(result).toMatchObject({ target: 'grpc', url: `grpc://${target}`, model: 'cls', binary: true })
    expect(result.steps.map((s) => s.label)).toEqual(['c=1', 'c=8'])
    for (const s of result.steps) {
      expect(s, s.label).toMatchObject({ requests: 40, successes: 40, errorCount: 0, checkedAnswers: 40 })
      expect(s.latency.p99).toBeGreaterThanOrEqual(s.latency.p50)
    }
    expect(result.warnings.filter((w) => w.includes('failed'))).toEqual([])
  })

  it('grpc-stream: streams answer in order in a closed and an open loop, with a summary table', async () => {
    const closed = await runHelix([
      'bench',
      '--target',
      'grpc-stream',
      '--url',
      target,
      ...cls,
      '-c',
      '4',
      '-n',
      '60',
      '--warmup',
      '0s',
      '--json',
    ])
    expect(closed.exitCode, closed.stderr).toBe(0)
    expect((JSON.parse(closed.stdout) as BenchResult).steps[0]).toMatchObject({
      successes: 60,
      errorCount: 0,
      checkedAnswers: 60,
    })
    const open = await runHelix([
      'bench',
      '--target',
      'grpc-stream',
      '--url',
      `grpc://${target}`,
      ...cls,
      '--rate',
      '200',
      '--connections',
      '2',
      '-n',
      '60',
      '--warmup',
      '0s',
    ])
    expect(open.exitCode, open.stderr).toBe(0)
    expect(open.stdout).toMatch(new RegExp(`helix bench grpc-stream grpc://${target} model=cls \\(binary\\)`))
    expect(open.stdout).toMatch(/rate=200/)
  })

  it('refuses the REST port and TLS flags without grpcs://, before any load', async () => {
    const rest = await runHelix(['bench', '--target', 'grpc', '--url', daemon.url, ...cls, '-n', '1'])
    expect(rest.exitCode).toBe(2)
    expect(rest.stderr).toMatch(/did not answer as a gRPC server \(Protocol error\)/)
    expect(rest.stderr).toMatch(/the gRPC port, not the REST one/)
    const tlsFlag = await runHelix([
      'bench',
      '--target',
      'grpc',
      '--url',
      target,
      '--cacert',
      join(daemon.dir, 'nope.crt'),
      ...cls,
      '-n',
      '1',
    ])
    expect(tlsFlag.exitCode).toBe(2)
    expect(tlsFlag.stderr).toMatch(/--cacert needs a grpcs:\/\/ --url/)
  })
})

/** gRPC over TLS and mTLS with the certificates `helix init` made, through the command in this process. */
describe('helix bench gRPC targets over TLS and mTLS', () => {
  let tls: HelixDaemon
  let mtls: HelixDaemon
  let other: { dir: string; cleanup: () => Promise<void> }
  const load = [...cls, '-c', '2', '--requests', '12', '--warmup', '0s', '--json']
  beforeAll(async () => {
    ;[tls, mtls, other] = await Promise.all([
      startHelixWithCls({ init: true, serveArgs: ['--tls'] }),
      startHelixWithCls({ init: true, serveArgs: ['--mtls'] }),
      tempDir('helix-bench-grpc-tls-'),
    ])
  })
  afterAll(async () => {
    await Promise.all([tls?.stop(), mtls?.stop(), other?.cleanup()])
  })

  it('trusts the helix directory CA by itself (grpcs:// from data/daemon.json), refuses an unknown CA', async () => {
    const ok = await bench(['--target', 'grpc-stream', '--dir', tls.dir, ...load])
    expect(ok.exit, ok.err).toBeUndefined()
    expect(ok.result?.url).toBe(`grpcs://${await grpcTarget(tls.dir)}`)
    expect(ok.result?.steps[0]).toMatchObject({ successes: 12, errorCount: 0, checkedAnswers: 12 })
    const url = `grpcs://${await grpcTarget(tls.dir)}`
    const untrusted = await bench(['--target', 'grpc', '--url', url, '--dir', other.dir, ...load])
    expect(untrusted.exit).toBe(1)
    expect(untrusted.err).toMatch(/Cannot reach grpcs:\/\/127\.0\.0\.1:\d+: /)
    expect(untrusted.err).toContain('--cacert')
    const pinned = await bench([
      '--target',
      'grpc',
      '--url',
      url,
      '--dir',
      other.dir,
      '--cacert',
      join(tls.dir, 'certs', 'ca.crt'),
      ...load,
    ])
    expect(pinned.exit, pinned.err).toBeUndefined()
    expect(pinned.result?.steps[0].successes).toBe(12)
    const plaintext = await bench(['--target', 'grpc', '--url', await grpcTarget(tls.dir), ...load])
    expect(plaintext.exit, plaintext.err).toBe(1)
    expect(plaintext.err).toMatch(/Cannot reach grpc:\/\/127\.0\.0\.1:\d+: Failed to connect/)
    expect(plaintext.err).toContain('use grpcs://host:port')
  })

  it('--mtls: the client certificate gets through; without it the server refuses, with a hint', async () => {
    const certs = join(mtls.dir, 'certs')
    const url = `grpcs://${await grpcTarget(mtls.dir)}`
    const ok = await bench([
      '--target',
      'grpc',
      '--url',
      url,
      '--dir',
      mtls.dir,
      '--client-cert',
      join(certs, 'client.crt'),
      '--client-key',
      join(certs, 'client.key'),
      ...load,
    ])
    expect(ok.exit, ok.err).toBeUndefined()
    expect(ok.result?.steps[0]).toMatchObject({ successes: 12, errorCount: 0, checkedAnswers: 12 })
    const refused = await bench(['--target', 'grpc', '--url', url, '--dir', mtls.dir, ...load])
    expect(refused.exit).toBe(1)
    expect(refused.err).toMatch(/Cannot reach grpcs:/)
    expect(refused.err).toContain('--client-cert')
  })
})
