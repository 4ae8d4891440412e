import { describe, expect, it } from 'vitest'
import { renderStatus } from '../../../src/cli/output/status.js'
import type { StatusReport } from '../../../src/ops/status.js'

function report(daemon: StatusReport['daemon'], grpc?: StatusReport['grpc']): StatusReport {
  return {
    daemon,
    ...(grpc ? { grpc } : {}),
    models: [],
    database: { mode: 'embedded', running: false, reachable: false } as StatusReport['database'],
    certificates: [],
    jwt: { error: 'no current JWT signing key (run `helix keys generate`)' },
    gpus: { gpus: [], reason: 'nvidia-smi not found' } as StatusReport['gpus'],
  }
}

describe('renderStatus: the daemon line', () => {
  it('shows the pid of a recorded daemon', () => {
    const text = renderStatus(
      report({
        url: 'http://127.0.0.1:18080',
        source: 'record',
        pid: 4242,
        reachable: true,
        ready: true,
        version: '0.1.0',
        uptimeSeconds: 75,
      }),
    )
    expect(text).toMatch(
      /^daemon +http:\/\/127\.0\.0\.1:18080 {2}ready {2}version 0\.1\.0 {2}up 1m 15s {2}pid 4242$/m,
    )
  })

  it('says why a daemon is not ready', () => {
    const text = renderStatus(
      report({
        url: 'http://127.0.0.1:18080',
        source: 'record',
        reachable: true,
        ready: false,
        notReadyReason: "loading model 'cls' (version 1)",
        version: '0.1.0',
      }),
    )
    expect(text).toMatch(
      /^daemon +http:\/\/127\.0\.0\.1:18080 {2}NOT READY \(loading model 'cls' \(version 1\)\) {2}version 0\.1\.0$/m,
    )
  })

  it('tells a daemon that is not running from a recorded one that does not answer', () => {
    const config = renderStatus(
      report({ url: 'http://127.0.0.1:8080', source: 'config', reachable: false, error: 'ECONNREFUSED' }),
    )
    expect(config).toContain('not running (ECONNREFUSED); start it with `helix serve` or `helix up`')
    const hung = renderStatus(
      report({
        url: 'http://127.0.0.1:18080',
        source: 'record',
        pid: 4242,
        reachable: false,
        error: 'UND_ERR_CONNECT_TIMEOUT',
      }),
    )
    expect(hung).toContain('NOT ANSWERING (UND_ERR_CONNECT_TIMEOUT) although pid 4242 runs')
  })
})

describe('renderStatus: the gRPC line', () => {
  const running = {
    url: 'https://127.0.0.1:18080',
    source: 'record' as const,
    pid: 4242,
    reachable: true,
    ready: true,
    version: '0.1.0',
  }

  it('shows the target, TLS and the grpc.health.v1 answer under the daemon line', () => {
    const serving = renderStatus(
      report(running, { target: '127.0.0.1:18081', source: 'record', tls: true, status: 'SERVING' }),
    )
    expect(serving.split('\n')[1]).toBe('grpc       127.0.0.1:18081 (tls)  serving')
    const notServing = renderStatus(
      report(running, { target: '127.0.0.1:18081', source: 'record', tls: false, status: 'NOT_SERVING' }),
    )
    expect(notServing).toMatch(/^grpc {7}127\.0\.0\.1:18081 {2}NOT SERVING \(grpc\.health\.v1\)$/m)
  })

  it('tells a gRPC face that does not answer from a daemon that is not running', () => {
    const silent = renderStatus(
      report(running, {
        target: '127.0.0.1:18081',
        source: 'record',
        tls: false,
        error: 'DEADLINE_EXCEEDED: Deadline exceeded',
      }),
    )
    expect(silent).toMatch(
      /^grpc {7}127\.0\.0\.1:18081 {2}NOT ANSWERING \(DEADLINE_EXCEEDED: Deadline exceeded\)$/m,
    )
    const down = renderStatus(
      report(
        { url: 'http://127.0.0.1:8080', source: 'config', reachable: false, error: 'ECONNREFUSED' },
        {
          target: '127.0.0.1:8081',
          source: 'config',
          tls: false,
          error: 'UNAVAILABLE: connect ECONNREFUSED',
        },
      ),
    )
    expect(down).toMatch(/^grpc {7}127\.0\.0\.1:8081 {2}not running \(UNAVAILABLE: connect ECONNREFUSED\)$/m)
  })

  it('has no gRPC line when the daemon serves no gRPC', () => {
    expect(renderStatus(report(running))).not.toMatch(/^grpc/m)
  })
})
