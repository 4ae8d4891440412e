/**
 * What every model's loads took and why the failed ones failed, kept since the daemon started, for
 * the metrics (read at scrape time). Failure reasons are folded into a few fixed kinds so a label
 * never carries free text.
 */

export type LoadFailureKind =
  | 'crashed'
  | 'missing_file'
  | 'memory_budget'
  | 'device'
  | 'config'
  | 'warmup'
  | 'invalid_model'

export interface ModelLoadStats {
  model: string
  /** Versions loaded (READY). */
  loads: number
  /** Seconds spent in loads, failed ones included. */
  loadSeconds: number
  /** Seconds of the last load of a version, whatever its outcome. */
  lastLoadSeconds: number
  failures: Partial<Record<LoadFailureKind, number>>
}

/** The kind of a load failure, from the reason the lifecycle gives (model-lifecycle.ts, the backends). */
export function loadFailureKind(reason: string): LoadFailureKind {
  if (
    /worker (threads?|process(es)?) (stopped|exited|failed)|lost with its onnxruntime worker (thread|process)/.test(
      reason,
    )
  )
    return 'crashed'
  if (/ is missing$|no backend serves/.test(reason)) return 'missing_file'
  if (/memory_budget/.test(reason)) return 'memory_budget'
  if (/CUDA|WebGPU|GPU|cannot place|device/i.test(reason)) return 'device'
  if (/config\.yaml|max_batch_size|text\.task/.test(reason)) return 'config'
  if (/warmup/i.test(reason)) return 'warmup'
  return 'invalid_model'
}

export class LoadStats {
  private readonly models = new Map<string, ModelLoadStats>()

  private of(model: string): ModelLoadStats {
    let stats = this.models.get(model)
    if (!stats) {
      stats = { model, loads: 0, loadSeconds: 0, lastLoadSeconds: 0, failures: {} }
      this.models.set(model, stats)
    }
    return stats
  }

  record(model: string, seconds: number, failure?: string): void {
    const stats = this.of(model)
    stats.loadSeconds += seconds
    stats.lastLoadSeconds = seconds
    if (failure === undefined) stats.loads++
    else this.fail(model, failure)
  }

  /** A failed load, or a loaded version that stopped serving (its instances kept crashing). */
  fail(model: string, reason: string): void {
    const stats = this.of(model)
    const kind = loadFailureKind(reason)
    stats.failures[kind] = (stats.failures[kind] ?? 0) + 1
  }

  list(): ModelLoadStats[] {
    return [...this.models.values()]
  }
}
