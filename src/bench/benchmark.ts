import { writeFileAtomic } from '../shared/atomic-write.js'
import { compareWithBaseline, loadBaseline, saveBaseline } from './baseline.js'
import { renderCsv } from './report/csv.js'
import { renderHtmlReport } from './report/html-report.js'
import { type BenchOptions, runBench } from './run-bench.js'
import { type TuneOptions, tune } from './tune.js'
import type { BenchResult } from './types.js'

export interface BenchmarkOptions extends BenchOptions {
  /** Sweep batching configs instead of a plain run. */
  tune?: Omit<TuneOptions, keyof BenchOptions>
  csvFile?: string
  reportFile?: string
  saveBaselineFile?: string
  compare?: { file: string; maxRegression: number }
}

/**
 * What `helix bench` does: run (or tune), compare with a baseline, then write the CSV, HTML report and
 * new baseline. The baseline is read before any load so a wrong path fails fast.
 */
export async function benchmark(options: BenchmarkOptions): Promise<BenchResult> {
  const baseline = options.compare ? await loadBaseline(options.compare.file) : undefined
  const result = options.tune ? await tune({ ...options, ...options.tune }) : await runBench(options)
  if (baseline && options.compare) {
    result.comparison = compareWithBaseline(
      result,
      baseline,
      options.compare.file,
      options.compare.maxRegression,
    )
  }
  if (options.csvFile) await writeFileAtomic(options.csvFile, renderCsv(result))
  if (options.reportFile) await writeFileAtomic(options.reportFile, renderHtmlReport(result))
  if (options.saveBaselineFile) await saveBaseline(options.saveBaselineFile, result)
  return result
}
