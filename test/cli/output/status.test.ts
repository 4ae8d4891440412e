import { describe, expect, it } from 'vitest'
import { renderStatus } from '../../../src/cli/output/status.js'
import type { StatusReport } from '../../../src/ops/status.js'

function report(daemon: StatusReport['daemon']): StatusReport {
  return {
    daemon,
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
