import type { TextEngine } from '../generate/types.js'
import type { Tensor, TensorSpec } from '../infer/types.js'

/** Device policy of a model: where it may run, and whether falling back to the CPU is allowed. */
export type DevicePolicy = 'auto' | 'cuda' | 'webgpu' | 'cpu'

/** What a loaded backend reports about itself (model metadata, health details, metric labels). */
export interface BackendDescription {
  inputs: TensorSpec[]
  outputs: TensorSpec[]
  /** Execution provider actually in use: 'cpu', 'cuda' or 'webgpu'. */
  executionProvider: string
  /** Where it runs: 'cpu', 'cuda:1', 'webgpu'. */
  device: string
  /** Sessions (instances) serving the model. */
  instances: number
  /**
   * Set when runs compute off the event loop (worker threads, another process): the event loop stays
   * free during a run, so the scheduler may hand each instance its next batch while one computes.
   */
  computesOffEventLoop?: boolean
  /** The model's platform as KServe metadata names it (Triton's names); onnxruntime_onnx when absent. */
  platform?: string
  /** Why the provider differs from what the policy preferred (auto fell back to the CPU). */
  fallbackReason?: string
}

/**
 * The narrow interface every inference backend implements. A backend owns one model version's
 * sessions; the scheduler calls `run` with whole batches and never touches the runtime itself.
 */
export interface Backend {
  /** Loads the model (sessions, device placement); rejects with the reason when it cannot. */
  load(): Promise<void>
  /** Runs one batch: inputs in any order by name, returns every output (or the named ones). */
  run(inputs: Tensor[], outputNames?: string[]): Promise<Tensor[]>
  /** Releases sessions and device memory; safe to call twice. */
  dispose(): Promise<void>
  describe(): BackendDescription
  /** Set by text-model backends (Hugging Face–format folders): generation and embeddings. */
  readonly text?: TextEngine
}
