import { renderTable } from '../../cli/output/table.js'
import type { BenchResult, ServerDuration } from '../types.js'

const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2))
const server = (d: ServerDuration | undefined) => (d ? `${ms(d.mean)}/${ms(d.p99)}` : '-')

/** The human summary: one row per step, then streaming timings, comparison and warnings. */
export function renderSummary(result: BenchResult): string {
  const lines = [
    `helix bench ${result.target} ${result.url}${result.model ? ` model=${result.model}` : ''}${result.binary ? ' (binary)' : ''}`,
    '',
  ]
  lines.push(
    renderTable(
      [
        'step',
        'req/s',
        'p50 ms',
        'p90',
        'p95',
        'p99',
        'p99.9',
        'max',
        'errors',
        'queue mean/p99',
        'compute mean/p99',
        'client cpu',
      ],
      result.steps.map((s) => [
        s.label,
        s.throughput.toFixed(1),
        ms(s.latency.p50),
        ms(s.latency.p90),
        ms(s.latency.p95),
        ms(s.latency.p99),
        ms(s.latency.p999),
        ms(s.latency.max),
        s.errorCount,
        server(s.server?.queue),
        server(s.server?.compute),
        `${Math.round(s.clientCpu * 100)}%`,
      ]),
    ),
  )
  const streamed = result.steps.filter((s) => s.stream)
  if (streamed.length > 0) {
    lines.push('', 'Streaming (ms)')
    lines.push(
      renderTable(
        ['step', 'TTFT p50', 'TTFT p99', 'ITL p50', 'ITL p99', 'tokens/s'],
        streamed.map((s) => [
          s.label,
          ms(s.stream!.timeToFirstToken.p50),
          ms(s.stream!.timeToFirstToken.p99),
          ms(s.stream!.interTokenLatency.p50),
          ms(s.stream!.interTokenLatency.p99),
          (s.stream!.tokens / (s.durationMs / 1000)).toFixed(1),
        ]),
      ),
    )
  }
  if (result.steps.some((s) => s.mode === 'open'))
    lines.push(
      '',
      'Open loop: latency measured from each intended send time (coordinated omission corrected).',
    )
  if (result.comparison) {
    const c = result.comparison
    lines.push(
      '',
      `Compared with ${c.baselineFile} (max regression ${(c.maxRegression * 100).toFixed(0)}%): ${c.regressed ? 'REGRESSED' : 'ok'}`,
    )
    for (const s of c.steps) {
      lines.push(
        `  ${s.label}: throughput ${pct(s.throughputChange)}, p99 ${pct(s.p99Change)}${s.regressed ? '  ← regression' : ''}`,
      )
    }
    if (c.missing.length > 0) lines.push(`  not in this run: ${c.missing.join(', ')}`)
  }
  if (result.tuning) {
    const t = result.tuning
    lines.push(
      '',
      `Tuning at concurrency ${t.concurrency}, target p99 ≤ ${t.targetP99Ms} ms (configs applied via ${t.method}):`,
    )
    lines.push(
      renderTable(
        ['max_batch_size', 'max_queue_delay_ms', 'req/s', 'p99 ms', 'errors', 'within target'],
        t.candidates.map((c) => [
          c.maxBatchSize,
          c.maxQueueDelayMs,
          c.throughput.toFixed(1),
          ms(c.p99),
          c.errors,
          c.withinTarget ? 'yes' : 'no',
        ]),
      ),
    )
    lines.push(
      t.best
        ? `Recommended: max_batch_size: ${t.best.maxBatchSize}, max_queue_delay_ms: ${t.best.maxQueueDelayMs} (${t.best.throughput.toFixed(1)} req/s, p99 ${ms(t.best.p99)} ms)`
        : `No candidate met p99 ≤ ${t.targetP99Ms} ms; lower the concurrency or relax --target-p99.`,
    )
  }
  for (const w of result.warnings) lines.push(`Warning: ${w}`)
  return lines.join('\n')
}

function pct(x: number): string {
  return `${x > 0 ? '+' : ''}${(x * 100).toFixed(1)}%`
}
