import { basename, dirname, extname } from 'node:path'
import { isTextModelDir, TEXT_MODEL_FILE } from '../generate/hf-folder.js'
import { TextBackend } from '../generate/text-backend.js'
import type { GpuDiscovery } from '../gpu/nvidia-smi.js'
import type { GpuReservations } from '../gpu/placement.js'
import type { ModelConfig } from '../infer/model-config.js'
import type { CoreLogger } from '../logger.js'
import type { Backend, DevicePolicy } from './backend.js'
import { OnnxBackend } from './onnx-backend.js'
import { PytorchBackend, type PytorchSettings } from './pytorch/pytorch-backend.js'
import { TfjsBackend } from './tfjs/tfjs-backend.js'
import { TFJS_MODEL_FILE } from './tfjs/tfjs-files.js'
import type { WorkerPool } from './worker-pool.js'
import type { Isolation } from './worker-session.js'

/** What the inference core gives any backend for one model version; each reads what applies to it. */
export interface BackendOptions {
  modelPath: string
  /** The model's config.yaml (device, gpu, instances, threads …). */
  config: ModelConfig
  /** Device policy when the config names none (helix.yaml models.device). */
  defaultDevice: DevicePolicy
  /** Worker threads unless the config says otherwise (absent: the backend decides). */
  workerThreads?: boolean
  /** The process's worker threads, for backends that compute in them. */
  workerPool?: WorkerPool
  /** Where instances run unless the config says otherwise (helix.yaml models.isolation). */
  isolation?: Isolation
  /** For log lines: "model:version". */
  label: string
  logger: CoreLogger
  /** Called when a loaded backend gives up serving (its instances kept losing their threads). */
  onUnavailable?: (reason: string) => void
  /** helix.yaml backends.pytorch (the Python that runs TorchScript workers). */
  pytorch?: PytorchSettings
  /** GPU discovery, shared by a burst of loads. */
  discoverGpus: () => Promise<GpuDiscovery>
  reservations: GpuReservations
}

export type BackendFactory = (options: BackendOptions) => Backend

/** ONNX Runtime (onnxruntime-node) for model.onnx: CUDA, WebGPU or the CPU by the device policy. */
export function onnxBackend(options: BackendOptions): Backend {
  const { config } = options
  return new OnnxBackend({
    modelPath: options.modelPath,
    device: config.device ?? options.defaultDevice,
    gpu: config.gpu,
    memoryBudgetMiB: config.memory_budget_mb,
    // Undefined leaves it to the backend: one worker-thread session on the CPU (two under load), one on a GPU.
    instances: config.instances,
    intraOpThreads: config.intra_op_threads,
    interOpThreads: config.inter_op_threads,
    workerThreads: config.worker_threads ?? options.workerThreads,
    isolation: config.isolation ?? options.isolation,
    allowSpinning: config.allow_spinning,
    ...(config.run_timeout_s ? { runTimeoutMs: config.run_timeout_s * 1000 } : {}),
    ...(options.onUnavailable ? { onUnavailable: options.onUnavailable } : {}),
    label: options.label,
    logger: options.logger,
    discoverGpus: options.discoverGpus,
    reservations: options.reservations,
    ...(options.workerPool ? { pool: options.workerPool } : {}),
  })
}

/** TorchScript (model.pt) in long-lived Python worker processes running torch. */
export function pytorchBackend(options: BackendOptions): Backend {
  const { config } = options
  return new PytorchBackend({
    modelPath: options.modelPath,
    config,
    device: config.device ?? options.defaultDevice,
    settings: options.pytorch ?? {},
    label: options.label,
    logger: options.logger,
  })
}

/** TensorFlow.js (model.json + weight shards) in worker threads on tfjs's WebAssembly backend. */
export function tfjsBackend(options: BackendOptions): Backend {
  const { config } = options
  return new TfjsBackend({
    modelPath: options.modelPath,
    config,
    device: config.device ?? options.defaultDevice,
    label: options.label,
    logger: options.logger,
  })
}

/** A Hugging Face–format folder (onnx/model.onnx beside tokenizer.json): text generation or embeddings. */
export function textBackend(options: BackendOptions): Backend {
  const { config } = options
  return new TextBackend({
    modelPath: options.modelPath,
    config,
    device: config.device ?? options.defaultDevice,
    ...(config.gpu !== undefined ? { gpu: config.gpu } : {}),
    label: options.label,
    logger: options.logger,
    discoverGpus: options.discoverGpus,
    reservations: options.reservations,
    ...(options.workerPool ? { workerPool: options.workerPool } : {}),
    ...((config.isolation ?? options.isolation) ? { isolation: config.isolation ?? options.isolation } : {}),
    ...(options.onUnavailable ? { onUnavailable: options.onUnavailable } : {}),
  })
}

export type { PytorchSettings }

/** The backends by model format; the scheduler and the service see only the Backend interface. */
export const BACKENDS = {
  onnx: onnxBackend,
  pytorch: pytorchBackend,
  tfjs: tfjsBackend,
  text: textBackend,
} as const satisfies Record<string, BackendFactory>

export type ModelFormat = keyof typeof BACKENDS

const FORMAT_BY_EXTENSION: Record<string, ModelFormat> = { '.onnx': 'onnx', '.pt': 'pytorch' }

/** The format of a model file, from its name (model.onnx → onnx, model.json → tfjs); undefined when no backend serves it. */
export function formatOf(modelPath: string): ModelFormat | undefined {
  if (modelPath.endsWith(TEXT_MODEL_FILE) && isTextModelDir(dirname(dirname(modelPath)))) return 'text'
  if (basename(modelPath) === TFJS_MODEL_FILE) return 'tfjs'
  return FORMAT_BY_EXTENSION[extname(modelPath).toLowerCase()]
}
