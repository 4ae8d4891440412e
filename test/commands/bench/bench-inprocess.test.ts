import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BenchResult } from '../../../src/bench/types.js'
import { startServer, type TestServer } from '../../bench/servers.js'
import { tempDir } from '../../helpers/cli.js'
import { benchInProcess as bench } from './bench-in-process.js'

describe('Bench command in process', () => {
  let fast: TestServer
  let slow: TestServer
  let tmp: { dir: string; cleanup: () => Promise<void> }
  beforeAll(async () => {
    fast = await startServer({ delayMs: 5 })
    slow = await startServer({ delayMs: 60 })
    tmp = await tempDir()
  })
  afterAll(async () => {
    await fast.close()
    await slow.close()
    await tmp.cleanup()
  })

  it('runs an open-loop sweep and writes CSV, report and baseline', async () => {
    const csv = join(tmp.dir, 'a.csv')
    const report = join(tmp.dir, 'a.html')
    const baseline = join(tmp.dir, 'a.json')
    const r = await bench([
      '--url',
      fast.url,
      '--model',
      'm',
      '--rate',
      '100,200',
      '-n',
      '30',
      '--warmup',
      '0s',
      '--csv',
      csv,
      '--report',
      report,
      '--save-baseline',
      baseline,
      '-H',
      'X-Trace: 1',
    ])
    expect(r.exit, r.err).toBeUndefined()
    expect(r.result?.steps.map((s) => s.label)).toEqual(['rate=100', 'rate=200'])
    expect(r.out).toContain('rate=200')
    expect((await readFile(csv, 'utf8')).split('\r\n')[1]).toMatch(/^rate=100,open,,100,/)
    expect(await readFile(report, 'utf8')).toContain('id="chart-percentiles"')
    expect(JSON.parse(await readFile(baseline, 'utf8')).result.steps).toHaveLength(2)
  })

  it('exits 1 with the result and a regression message when --compare finds a slowdown', async () => {
    const baseline = join(tmp.dir, 'b.json')
    const args = (url: string) => ['--url', url, '--model', 'm', '-c', '2', '-n', '40', '--warmup', '0s']
    expect((await bench([...args(fast.url), '--save-baseline', baseline])).exit).toBeUndefined()
    const r = await bench([...args(slow.url), '--compare', baseline, '--max-regression', '50%', '--json'])
    expect(r.exit).toBe(1)
    expect((JSON.parse(r.out) as BenchResult).comparison?.regressed).toBe(true)
    expect(JSON.parse(r.err).error).toMatchObject({ code: 'BENCH_REGRESSION' })
  })

  it('rejects --tune without a model directory before sending load', async () => {
    const before = fast.hits.get('/v2/models/m/infer') ?? 0
    const r = await bench(['--url', fast.url, '--tune', '--dir', tmp.dir])
    expect(r.exit).toBe(2)
    expect(r.err).toMatch(
      /--tune writes candidate configs into the model's directory, and none does not exist/,
    )
    expect(fast.hits.get('/v2/models/m/infer') ?? 0).toBe(before)
  })

  it('--target http has no default URL; a KServe target defaults to the daemon of --dir', async () => {
    const http = await bench(['--target', 'http', '--dir', tmp.dir, '--json'])
    expect(http.exit).toBe(2)
    expect(JSON.parse(http.err).error).toMatchObject({ code: 'BENCH_URL_REQUIRED' })
    // No daemon recorded in this directory: the configured address, where a port is taken to be free.
    const port = new URL(fast.url).port
    const before = fast.hits.get('/v2/models/m') ?? 0
    await writeFile(join(tmp.dir, 'helix.yaml'), `server:\n  port: ${port}\n`)
    await bench([
      '--model',
      'm',
      '--dir',
      tmp.dir,
      '--requests',
      '1',
      '--warmup',
      '0ms',
      '--concurrency',
      '1',
    ])
    expect(fast.hits.get('/v2/models/m') ?? 0).toBeGreaterThan(before)
  })
})
