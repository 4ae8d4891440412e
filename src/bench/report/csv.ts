import type { BenchResult } from '../types.js'

const COLUMNS = [
  'step',
  'mode',
  'concurrency',
  'rate',
  'throughput_rps',
  'requests',
  'successes',
  'errors',
  'duration_ms',
  'p50_ms',
  'p90_ms',
  'p95_ms',
  'p99_ms',
  'p999_ms',
  'max_ms',
  'mean_ms',
  'queue_mean_ms',
  'queue_p99_ms',
  'compute_mean_ms',
  'compute_p99_ms',
  'ttft_p50_ms',
  'ttft_p99_ms',
  'itl_p50_ms',
  'itl_p99_ms',
  'client_cpu',
] as const

/** RFC 4180 CSV, one row per step; empty cells where a measurement does not apply. */
export function renderCsv(result: BenchResult): string {
  const rows = result.steps.map((s) => [
    s.label,
    s.mode,
    s.concurrency,
    s.rate,
    s.throughput,
    s.requests,
    s.successes,
    s.errorCount,
    s.durationMs,
    s.latency.p50,
    s.latency.p90,
    s.latency.p95,
    s.latency.p99,
    s.latency.p999,
    s.latency.max,
    s.latency.mean,
    s.server?.queue?.mean,
    s.server?.queue?.p99,
    s.server?.compute?.mean,
    s.server?.compute?.p99,
    s.stream?.timeToFirstToken.p50,
    s.stream?.timeToFirstToken.p99,
    s.stream?.interTokenLatency.p50,
    s.stream?.interTokenLatency.p99,
    s.clientCpu,
  ])
  return `${[[...COLUMNS], ...rows].map((r) => r.map(cell).join(',')).join('\r\n')}\r\n`
}

function cell(value: string | number | undefined): string {
  if (value === undefined) return ''
  const text = String(value)
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}
