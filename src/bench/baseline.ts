import { readFile } from 'node:fs/promises'
import { writeFileAtomic } from '../shared/atomic-write.js'
import { UserError } from '../shared/errors.js'
import type { BenchResult, Comparison, StepComparison } from './types.js'

/** A saved run (`--save-baseline`): the full result, marked so a wrong file is recognised. */
export interface Baseline {
  kind: 'helix-bench-baseline'
  version: 1
  result: BenchResult
}

export async function saveBaseline(path: string, result: BenchResult): Promise<void> {
  const baseline: Baseline = { kind: 'helix-bench-baseline', version: 1, result }
  await writeFileAtomic(path, `${JSON.stringify(baseline, null, 2)}\n`)
}

export async function loadBaseline(path: string): Promise<Baseline> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new UserError(
      'BENCH_BASELINE_UNREADABLE',
      `Cannot read baseline ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      {
        hint: 'Create one first with --save-baseline, or check the --compare path.',
        cause: err,
      },
    )
  }
  let parsed: Partial<Baseline>
  try {
    parsed = JSON.parse(text) as Partial<Baseline>
  } catch {
    parsed = {}
  }
  if (
    parsed.kind !== 'helix-bench-baseline' ||
    parsed.version !== 1 ||
    !Array.isArray(parsed.result?.steps)
  ) {
    throw new UserError('BENCH_BASELINE_INVALID', `${path} is not a helix bench baseline`, {
      hint: 'Write baselines with `helix bench … --save-baseline FILE`.',
    })
  }
  return parsed as Baseline
}

/**
 * Compares each step with the baseline step of the same label: a regression is throughput lower by
 * more than `maxRegression` or p99 latency higher by more than `maxRegression` (both relative).
 */
export function compareWithBaseline(
  result: BenchResult,
  baseline: Baseline,
  baselineFile: string,
  maxRegression: number,
): Comparison {
  const steps: StepComparison[] = []
  const missing: string[] = []
  for (const before of baseline.result.steps) {
    const now = result.steps.find((s) => s.label === before.label)
    if (!now) {
      missing.push(before.label)
      continue
    }
    const throughputChange = relative(now.throughput, before.throughput)
    const p99Change = relative(now.latency.p99, before.latency.p99)
    steps.push({
      label: now.label,
      baselineThroughput: before.throughput,
      throughput: now.throughput,
      throughputChange,
      baselineP99: before.latency.p99,
      p99: now.latency.p99,
      p99Change,
      regressed: throughputChange < -maxRegression || p99Change > maxRegression,
    })
  }
  return { baselineFile, maxRegression, steps, regressed: steps.some((s) => s.regressed), missing }
}

function relative(now: number, before: number): number {
  if (before === 0) return now === 0 ? 0 : Number.POSITIVE_INFINITY
  return Math.round(((now - before) / before) * 10_000) / 10_000
}

/** One line per regressed step, for the error message. */
export function describeRegressions(comparison: Comparison): string {
  const pct = (x: number) => `${x > 0 ? '+' : ''}${(x * 100).toFixed(1)}%`
  return comparison.steps
    .filter((s) => s.regressed)
    .map(
      (s) =>
        `${s.label}: throughput ${s.baselineThroughput} → ${s.throughput} req/s (${pct(s.throughputChange)}), p99 ${s.baselineP99} → ${s.p99} ms (${pct(s.p99Change)})`,
    )
    .join('; ')
}
