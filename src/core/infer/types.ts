import type { Context } from '@opentelemetry/api'
import type { TextEngine, TextTask } from '../generate/types.js'
import type { CancelSignal } from './cancel-signal.js'
import type { ModelLoadStats } from './load-stats.js'

/**
 * The contract between the HTTP layer (routes, protocol codecs) and the inference core (model
 * repository, schedulers, backends). Routes never touch onnxruntime; the core never touches HTTP.
 */

/** KServe v2 / Open Inference Protocol datatypes. BF16 is accepted only through the binary extension. */
export const DATATYPES = [
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'BF16',
  'FP32',
  'FP64',
  'BYTES',
] as const
export type Datatype = (typeof DATATYPES)[number]

/**
 * Tensor elements, row-major. Numeric types use the matching typed array so tensors travel without
 * copies (binary extension → typed array view → onnxruntime Tensor). BOOL is a Uint8Array of 0/1,
 * FP16 and BF16 are Uint16Array bit patterns, BYTES is one Uint8Array per element.
 */
export type TensorData =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | BigUint64Array
  | BigInt64Array
  | Float32Array
  | Float64Array
  | Uint8Array[]

export interface Tensor {
  name: string
  datatype: Datatype
  shape: number[]
  data: TensorData
}

/** A model input or output as metadata reports it; -1 marks a dynamic dimension. */
export interface TensorSpec {
  name: string
  datatype: Datatype
  shape: number[]
}

export type ModelState = 'READY' | 'LOADING' | 'UNLOADING' | 'UNAVAILABLE'

export interface ModelMetadata {
  name: string
  versions: string[]
  platform: string
  inputs: TensorSpec[]
  outputs: TensorSpec[]
  /** Execution provider in use by the version described ('cpu', 'cuda', 'webgpu'). */
  executionProvider?: string
  /** Device of that version ('cpu', 'cuda:0', 'webgpu'). */
  device?: string
  /** Largest batch one request may carry on dim 0 (0: the model does not batch). */
  maxBatchSize?: number
}

/** One row of the repository index (POST /v2/repository/index). */
export interface ModelIndexEntry {
  name: string
  version: string
  state: ModelState
  reason?: string
  /** Execution provider actually in use ('cpu', 'cuda', 'webgpu'), when loaded. */
  executionProvider?: string
  device?: string
  queueDepth?: number
  /** The bound of that queue; beyond it requests get 429. */
  queueCapacity?: number
  /** Why the provider in use is not the preferred one (device auto fell back to the CPU). */
  fallbackReason?: string
}

export interface InferRequest {
  model: string
  /** A specific version; without it the model's traffic policy (latest, A/B split) decides. */
  version?: string
  id?: string
  inputs: Tensor[]
  /** Names of the outputs to return; all when absent. */
  outputs?: string[]
  /** Sticky A/B assignment key (API key id or a header value). */
  routingKey?: string
  /** Aborted when the client disconnects: queued work is dropped. */
  signal?: CancelSignal
  /** Per-request deadline in milliseconds. */
  timeoutMs?: number
  /**
   * Called once nothing reads the inputs' memory any more (after the answer, or after a shadow
   * version's copy is done with them), so the caller may reuse it. Not called when the request
   * fails: a timed-out request's inputs may still be in a running batch.
   */
  releaseInputs?: () => void
  /** Request headers (lower-case names); a model's `sticky_header` is read from here before routingKey. */
  headers?: Record<string, string | string[] | undefined>
  /** The request span's context when tracing is on: queue, batch and compute spans hang under it. */
  traceContext?: Context
}

export interface TextTargetRequest {
  model: string
  version?: string
  /** What the caller needs; a model of another task is refused with MODEL_WRONG_TASK. */
  task?: TextTask
  routingKey?: string
  headers?: Record<string, string | string[] | undefined>
}

export interface TextTarget {
  modelName: string
  modelVersion: string
  engine: TextEngine
}

export interface InferTiming {
  /** Time spent waiting in the scheduler queue. */
  queueMs: number
  /** Time spent in the backend for the batch this request ran in. */
  computeMs: number
  /** Size of the batch this request ran in. */
  batchSize: number
}

export interface InferResult {
  modelName: string
  modelVersion: string
  id?: string
  outputs: Tensor[]
  timing: InferTiming
  /** True when the answer came from the model's response cache (timing is then all zeros). */
  cached?: boolean
}

/**
 * What the daemon's routes call. Errors are HelixErrors with these codes (mapped to HTTP statuses in
 * one table by the error plugin): MODEL_NOT_FOUND 404, VERSION_NOT_FOUND 404, INVALID_INPUT 400,
 * QUEUE_FULL 429, MODEL_NOT_READY 503, INFER_TIMEOUT 504, CANCELLED 499, BACKEND_FAILED 500.
 * load() also raises MODEL_LOAD_FAILED (500; versions that were serving keep serving).
 * QUEUE_FULL errors are QueueFullError (errors.ts) carrying retryAfterSeconds.
 */
/** Whether the server takes traffic, and why not when it does not (for operators and probes). */
export interface Readiness {
  ready: boolean
  reason?: string
}

export interface ModelService {
  /** Server-level readiness: every model that should be loaded is READY (or UNAVAILABLE with a reason). */
  isReady(): boolean
  /** isReady with the reason when not ready: starting, a model still loading, or draining. */
  readiness(): Readiness
  /**
   * The daemon has begun to drain (SIGTERM): from now on the server reports not ready, so load
   * balancers and readiness probes stop sending, while in-flight and queued work is still served.
   */
  beginDrain(): void
  metadata(model: string, version?: string): ModelMetadata
  /**
   * Ready state of one model (any version when version is absent). Throws MODEL_NOT_FOUND /
   * VERSION_NOT_FOUND for names the repository does not know, so routes can answer 404.
   */
  modelReady(model: string, version?: string): boolean
  index(options?: { readyOnly?: boolean }): ModelIndexEntry[]
  infer(request: InferRequest): Promise<InferResult>
  /**
   * A text model's engine (src/core/generate), routed like infer (a version, or the traffic policy
   * with routingKey/headers) and loaded on demand. Throws MODEL_NOT_FOUND, VERSION_NOT_FOUND,
   * MODEL_NOT_READY, and MODEL_WRONG_TASK when the model is not a text model or not of `task`.
   */
  text(request: TextTargetRequest): Promise<TextTarget>
  /** Load times and failures (by kind) of every model since start (metrics); absent: not tracked. */
  loadStats?(): ModelLoadStats[]
  /** Every ready text-model version (GET /v1/models). */
  textModels(): TextTarget[]
  /** (Re)loads a model from the repository without dropping in-flight requests. */
  load(model: string): Promise<void>
  unload(model: string): Promise<void>
  close(): Promise<void>
}
