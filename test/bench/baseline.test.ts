import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  compareWithBaseline,
  describeRegressions,
  loadBaseline,
  saveBaseline,
} from '../../src/bench/baseline.js'
import { stepWarnings } from '../../src/bench/run-bench.js'
import { tempDir } from '../helpers/cli.js'
import { benchResult, stepResult } from './fixtures.js'

describe('baselines', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> }
  beforeAll(async () => {
    tmp = await tempDir()
  })
  afterAll(() => tmp.cleanup())

  it('saves and loads a run', async () => {
    const file = join(tmp.dir, 'base.json')
    await saveBaseline(file, benchResult())
    expect(JSON.parse(await readFile(file, 'utf8')).kind).toBe('helix-bench-baseline')
    expect((await loadBaseline(file)).result.steps[0].label).toBe('c=8')
  })

  it('rejects a missing file or one that is not a baseline', async () => {
    await expect(loadBaseline(join(tmp.dir, 'none.json'))).rejects.toMatchObject({
      code: 'BENCH_BASELINE_UNREADABLE',
      exitCode: 2,
    })
    const bad = join(tmp.dir, 'bad.json')
    await writeFile(bad, '{"steps":[]}')
    await expect(loadBaseline(bad)).rejects.toMatchObject({ code: 'BENCH_BASELINE_INVALID' })
    await writeFile(bad, 'not json')
    await expect(loadBaseline(bad)).rejects.toMatchObject({ code: 'BENCH_BASELINE_INVALID' })
  })

  it('flags a throughput drop or a p99 rise beyond the threshold, and nothing within it', () => {
    const baseline = {
      kind: 'helix-bench-baseline' as const,
      version: 1 as const,
      result: benchResult([stepResult(), stepResult({ label: 'c=64' })]),
    }
    const same = compareWithBaseline(benchResult([stepResult({ throughput: 950 })]), baseline, 'b.json', 0.1)
    expect(same.regressed).toBe(false)
    expect(same.missing).toEqual(['c=64'])
    expect(same.steps[0].throughputChange).toBeCloseTo(-0.05)
    const slower = compareWithBaseline(
      benchResult([stepResult({ throughput: 850 })]),
      baseline,
      'b.json',
      0.1,
    )
    expect(slower.regressed).toBe(true)
    const laggier = compareWithBaseline(
      benchResult([stepResult({ latency: { ...stepResult().latency, p99: 14 } })]),
      baseline,
      'b.json',
      0.1,
    )
    expect(laggier.regressed).toBe(true)
    expect(describeRegressions(laggier)).toBe(
      'c=8: throughput 1000 → 1000 req/s (0.0%), p99 12 → 14 ms (+16.7%)',
    )
    const zero = {
      ...baseline,
      result: benchResult([stepResult({ throughput: 0, latency: { ...stepResult().latency, p99: 0 } })]),
    }
    const fromZero = compareWithBaseline(
      benchResult([stepResult({ throughput: 0, latency: { ...stepResult().latency, p99: 1 } })]),
      zero,
      'b.json',
      0.1,
    )
    expect(fromZero.steps[0]).toMatchObject({
      throughputChange: 0,
      p99Change: Number.POSITIVE_INFINITY,
      regressed: true,
    })
  })
})

describe('stepWarnings', () => {
  it('warns about a saturated generator, errors and an open loop the server cannot keep up with', () => {
    const warnings = stepWarnings(
      stepResult({ clientCpu: 0.97, mode: 'open', rate: 2000, label: 'rate=2000' }),
      0,
    )
    expect(warnings).toHaveLength(3)
    expect(warnings[0]).toMatch(/97% of a core.*--workers 2/)
    expect(warnings[1]).toMatch(/2 of 1002 requests failed \(status 503: 2\)/)
    expect(warnings[2]).toMatch(/below the offered 2000 req\/s/)
    expect(stepWarnings(stepResult({ clientCpu: 1.9, errorCount: 0 }), 2)[0]).toMatch(
      /of 2 cores.*--workers 3/,
    )
    expect(stepWarnings(stepResult({ clientCpu: 0.2, errorCount: 0 }), 0)).toEqual([])
  })
})
