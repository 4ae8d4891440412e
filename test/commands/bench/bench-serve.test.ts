import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { BenchResult } from '../../../src/bench/types.js'
import Bench from '../../../src/commands/bench.js'
import { type HelixDaemon, startHelixWithCls } from '../../bench/helix-daemon.js'
import { renderInChromium } from '../../bench/report/chromium.js'
import { ROOT, runHelix, tempDir } from '../../helpers/cli.js'
import { hasTool } from '../../helpers/tools.js'

/** `helix bench` against a real `helix serve` running the PP-OCR text-direction classifier. */
describe('helix bench against helix serve with the cls model', () => {
  let daemon: HelixDaemon
  let tmp: { dir: string; cleanup: () => Promise<void> }
  beforeAll(async () => {
    daemon = await startHelixWithCls()
    tmp = await tempDir()
  })
  afterAll(async () => {
    await daemon?.stop()
    await tmp?.cleanup()
  })

  it('prints per-step throughput and p50/p95/p99 with queue vs compute time, and a report that renders', async () => {
    const report = join(tmp.dir, 'r.html')
    const r = await runHelix([
      'bench',
      '--url',
      daemon.url,
      '--model',
      'cls',
      '--shape',
      'x=1,3,48,192',
      '--concurrency',
      '1,16,64',
      '--duration',
      '1s',
      '--warmup',
      '300ms',
      '--json',
      '--report',
      report,
    ])
    expect(r.exitCode, r.stderr).toBe(0)
    const result = JSON.parse(r.stdout) as BenchResult
    expect(result.steps.map((s) => s.label)).toEqual(['c=1', 'c=16', 'c=64'])
    for (const s of result.steps) {
      expect(s.throughput, s.label).toBeGreaterThan(0)
      expect(s.successes).toBeGreaterThan(0)
      expect(s.latency.p50).toBeGreaterThan(0)
      expect(s.latency.p95).toBeGreaterThanOrEqual(s.latency.p50)
      expect(s.latency.p99).toBeGreaterThanOrEqual(s.latency.p95)
      // The daemon's Server-Timing header splits each request into queue and compute time.
      expect(s.server?.compute?.count).toBe(s.successes)
      expect(s.server?.queue?.mean).toBeGreaterThanOrEqual(0)
    }
    if (hasTool('chromium')) {
      const page = await renderInChromium(report, [
        '#chart-percentiles svg',
        '#chart-throughput svg',
        '#chart-timeline svg',
        '#chart-throughput rect[data-value]',
      ])
      expect(page.problems).toEqual([])
      expect(page.requests).toEqual([])
      expect(page.counts).toEqual({
        '#chart-percentiles svg': 1,
        '#chart-throughput svg': 1,
        '#chart-timeline svg': 1,
        '#chart-throughput rect[data-value]': 3,
      })
    }
  })

  it('drives the binary tensor extension and an open loop', async () => {
    const r = await runHelix([
      'bench',
      '--url',
      daemon.url,
      '--model',
      'cls',
      '--shape',
      'x=1,3,48,192',
      '--binary',
      '--rate',
      '50',
      '-n',
      '40',
      '--warmup',
      '200ms',
      '--json',
    ])
    expect(r.exitCode, r.stderr).toBe(0)
    const step = (JSON.parse(r.stdout) as BenchResult).steps[0]
    expect(step).toMatchObject({
      label: 'rate=50',
      successes: 40,
      errorCount: 0,
      correctedForCoordinatedOmission: true,
    })
  })

  it('names the missing dynamic dimensions of the model, and an unknown model', async () => {
    const r = await runHelix(['bench', '--url', daemon.url, '--model', 'cls', '-n', '1'])
    expect(r.exitCode).toBe(2)
    expect(r.stderr).toMatch(/Input "x" has dynamic dimensions \[-1,3,-1,-1\][\s\S]*--shape x=1,3,N,N/)
    const unknown = await runHelix(['bench', '--url', daemon.url, '--model', 'nope', '-n', '1'])
    expect(unknown.exitCode).toBe(2)
    expect(unknown.stderr).toMatch(/^Error: Model "nope" is not served at /)
  })

  it('--tune sweeps batching configs through the load API, recommends one and restores the model config', async () => {
    const modelDir = join(daemon.dir, 'models', 'cls')
    const ownConfig = '# tuned by hand\nmax_batch_size: 4\n'
    await writeFile(join(modelDir, 'config.yaml'), ownConfig)
    expect((await fetch(`${daemon.url}/v2/repository/models/cls/load`, { method: 'POST' })).status).toBe(200)
    const out = vi.spyOn(console, 'log').mockImplementation(() => {})
    let result: BenchResult
    try {
      result = (await Bench.run(
        [
          '--url',
          daemon.url,
          '--model',
          'cls',
          '--shape',
          'x=1,3,48,192',
          '--tune',
          '--target-p99',
          '2s',
          '--tune-batch',
          '1,8',
          '--tune-delay',
          '0,2',
          '--concurrency',
          '8',
          '--duration',
          '700ms',
          '--warmup',
          '200ms',
          '--dir',
          daemon.dir,
        ],
        ROOT,
      )) as BenchResult
    } finally {
      out.mockRestore()
    }
    const tuning = result.tuning!
    expect(tuning).toMatchObject({ method: 'model-dir', modelDir, concurrency: 8, targetP99Ms: 2000 })
    expect(tuning.candidates.map((c) => [c.maxBatchSize, c.maxQueueDelayMs])).toEqual([
      [1, 0],
      [1, 2],
      [8, 0],
      [8, 2],
    ])
    for (const c of tuning.candidates) expect(c.throughput).toBeGreaterThan(0)
    const best = Math.max(...tuning.candidates.filter((c) => c.withinTarget).map((c) => c.throughput))
    expect(tuning.best?.throughput).toBe(best)
    // The model's own config.yaml is back byte for byte, and loaded again.
    expect(await readFile(join(modelDir, 'config.yaml'), 'utf8')).toBe(ownConfig)
    const metadata = (await (await fetch(`${daemon.url}/v2/models/cls`)).json()) as {
      max_batch_size?: number
    }
    expect(metadata.max_batch_size).toBe(4)
  })
})
