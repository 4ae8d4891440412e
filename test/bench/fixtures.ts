import type { BenchResult, StepResult } from '../../src/bench/types.js'

/** A step result with round numbers, for reporter and baseline tests. */
export function stepResult(over: Partial<StepResult> = {}): StepResult {
  const latency = { count: 1000, mean: 5, min: 1, p50: 4, p90: 8, p95: 9, p99: 12, p999: 20, max: 25 }
  return {
    label: 'c=8',
    mode: 'closed',
    concurrency: 8,
    throughput: 1000,
    requests: 1002,
    successes: 1000,
    errorCount: 2,
    errors: { 'status 503': 2 },
    durationMs: 1000,
    latency,
    correctedForCoordinatedOmission: false,
    server: { queue: { count: 1000, mean: 1, p99: 3 }, compute: { count: 1000, mean: 2, p99: 4 } },
    clientCpu: 0.35,
    timeline: [
      { second: 0, requests: 500, errors: 1, p50: 4, p99: 11 },
      { second: 1, requests: 502, errors: 1, p50: 4, p99: 13 },
    ],
    ...over,
  }
}

export function benchResult(
  steps: StepResult[] = [stepResult()],
  over: Partial<BenchResult> = {},
): BenchResult {
  return {
    target: 'kserve',
    url: 'http://127.0.0.1:8080',
    model: 'cls',
    binary: false,
    startedAt: '2026-01-01T00:00:00.000Z',
    workers: 0,
    steps,
    warnings: [],
    ...over,
  }
}
