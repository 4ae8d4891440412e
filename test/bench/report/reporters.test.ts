import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { renderCsv } from '../../../src/bench/report/csv.js'
import { renderHtmlReport } from '../../../src/bench/report/html-report.js'
import { formatProgress, progressWriter } from '../../../src/bench/report/progress-line.js'
import { renderSummary } from '../../../src/bench/report/summary-table.js'
import { hasTool } from '../../helpers/tools.js'
import { benchResult, stepResult } from '../fixtures.js'
import { renderInChromium } from './chromium.js'

const stream = {
  timeToFirstToken: { ...stepResult().latency, p50: 30 },
  interTokenLatency: { ...stepResult().latency, p50: 7 },
  tokens: 500,
}
const full = benchResult(
  [
    stepResult({ label: 'c=1', concurrency: 1, throughput: 300 }),
    stepResult(),
    stepResult({
      label: 'rate=100',
      mode: 'open',
      rate: 100,
      concurrency: undefined,
      server: undefined,
      stream,
      correctedForCoordinatedOmission: true,
    }),
  ],
  {
    warnings: ['c=8: 2 of 1002 requests failed (status 503: 2).'],
    comparison: {
      baselineFile: 'base.json',
      maxRegression: 0.1,
      regressed: true,
      missing: ['c=64'],
      steps: [
        {
          label: 'c=8',
          baselineThroughput: 1200,
          throughput: 1000,
          throughputChange: -0.1667,
          baselineP99: 12,
          p99: 12,
          p99Change: 0,
          regressed: true,
        },
      ],
    },
    tuning: {
      targetP99Ms: 50,
      concurrency: 32,
      method: 'model-dir',
      modelDir: '/m',
      candidates: [
        { maxBatchSize: 8, maxQueueDelayMs: 2, throughput: 900, p99: 20, errors: 0, withinTarget: true },
      ],
      best: { maxBatchSize: 8, maxQueueDelayMs: 2, throughput: 900, p99: 20, errors: 0, withinTarget: true },
    },
  },
)

describe('summary table', () => {
  it('shows one row per step with percentiles, errors, server timings and CPU, then comparison, tuning and warnings', () => {
    const text = renderSummary(full)
    expect(text).toMatch(/^helix bench kserve http:\/\/127\.0\.0\.1:8080 model=cls/)
    expect(text).toMatch(
      /c=8\s+1000\.0\s+4\.00\s+8\.00\s+9\.00\s+12\.0\s+20\.0\s+25\.0\s+2\s+1\.00\/3\.00\s+2\.00\/4\.00\s+35%/,
    )
    expect(text).toMatch(/rate=100 .* - +- +35%/)
    expect(text).toMatch(/Streaming \(ms\)[\s\S]*rate=100\s+30\.0\s+12\.0\s+7\.00\s+12\.0\s+500\.0/)
    expect(text).toContain('coordinated omission corrected')
    expect(text).toMatch(
      /REGRESSED[\s\S]*c=8: throughput -16\.7%, p99 0\.0% {2}← regression[\s\S]*not in this run: c=64/,
    )
    expect(text).toContain('Recommended: max_batch_size: 8, max_queue_delay_ms: 2 (900.0 req/s, p99 20.0 ms)')
    expect(text).toContain('Warning: c=8: 2 of 1002')
    const none = renderSummary(
      benchResult([stepResult({ latency: { ...stepResult().latency, p50: 150 } })], {
        tuning: { ...full.tuning!, best: undefined },
        comparison: { ...full.comparison!, regressed: false, missing: [], steps: [] },
        model: undefined,
        binary: true,
      }),
    )
    expect(none).toContain('No candidate met p99 ≤ 50 ms')
    expect(none).toMatch(/\(binary\)/)
    expect(none).toMatch(/: ok/)
    expect(none).toMatch(/c=8\s+1000\.0\s+150 /)
  })
})

describe('CSV', () => {
  it('writes a header and one RFC 4180 row per step, empty where a value does not apply', () => {
    const lines = renderCsv(full).split('\r\n')
    expect(lines).toHaveLength(5)
    expect(lines[0].split(',')).toHaveLength(25)
    expect(lines[0]).toMatch(/^step,mode,concurrency,rate,throughput_rps/)
    expect(lines[2]).toBe('c=8,closed,8,,1000,1002,1000,2,1000,4,8,9,12,20,25,5,1,3,2,4,,,,,0.35')
    expect(lines[3].split(',').slice(16, 24)).toEqual(['', '', '', '', '30', '12', '7', '12'])
    expect(renderCsv(benchResult([stepResult({ label: 'a,"b"' })])).split('\r\n')[1]).toMatch(/^"a,""b""",/)
  })
})

describe('progress line', () => {
  it('formats the live numbers and draws only on a TTY', () => {
    const line = formatProgress(
      { label: 'c=8', elapsedMs: 2000, successes: 1000, errors: 1, p99: 12.34 },
      10_000,
    )
    expect(line).toMatch(/^c=8\s+2\.0s\/10s\s+1000 ok\s+500 req\/s {2}p99 12\.3 ms {2}errors 1$/)
    expect(formatProgress({ label: 'c=1', elapsedMs: 0, successes: 0, errors: 0, p99: 0 })).toMatch(
      /0\.0s .* 0 req\/s/,
    )
    const written: string[] = []
    const tty = { isTTY: true, write: (s: string) => written.push(s) } as unknown as NodeJS.WriteStream
    const writer = progressWriter(tty, 1000)
    writer.update({ label: 'c=1', elapsedMs: 500, successes: 5, errors: 0, p99: 1 })
    writer.done()
    writer.done()
    expect(written).toHaveLength(2)
    expect(written[0].startsWith('\r\u001b[2Kc=1')).toBe(true)
    const pipe = progressWriter({
      isTTY: false,
      write: () => expect.fail('wrote to a pipe'),
    } as unknown as NodeJS.WriteStream)
    pipe.update({ label: 'c=1', elapsedMs: 1, successes: 1, errors: 0, p99: 1 })
    pipe.done()
  })
})

describe.skipIf(!hasTool('chromium'))('HTML report in headless Chromium', () => {
  it('is self-contained and renders its three charts without console errors or network requests', async () => {
    const html = renderHtmlReport({ ...full, url: 'http://x/</script><script>alert(1)</script>' })
    // No external script, stylesheet, font or image: everything the page needs is inline.
    expect(html).not.toMatch(
      /<script[^>]*\ssrc=|<link\b|@import|url\(\s*['"]?https?:|(?:src|href)=["']?https?:/i,
    )
    expect(html).toContain("default-src 'none'")
    const dir = await mkdtemp(join(tmpdir(), 'helix-report-'))
    const file = join(dir, 'r.html')
    await writeFile(file, html)
    try {
      const page = await renderInChromium(
        file,
        [
          '#chart-percentiles svg',
          '#chart-throughput svg',
          '#chart-timeline svg',
          '#chart-percentiles svg path[data-series]',
          '#chart-throughput svg rect[data-value]',
          '#chart-timeline svg path[data-series="p99"]',
          '#steps tr',
        ],
        ['#meta', '#extra'],
      )
      expect(page.problems).toEqual([])
      expect(page.requests).toEqual([])
      expect(page.counts).toEqual({
        '#chart-percentiles svg': 1,
        '#chart-throughput svg': 1,
        '#chart-timeline svg': 1,
        '#chart-percentiles svg path[data-series]': 5,
        '#chart-throughput svg rect[data-value]': 3,
        '#chart-timeline svg path[data-series="p99"]': 1,
        '#steps tr': 4,
      })
      expect(page.text['#meta']).toContain('</script><script>alert(1)</script>')
      expect(page.text['#extra']).toMatch(/Regression beyond 10%[\s\S]*Recommended: max_batch_size 8/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
