import { firstLine } from '../../../shared/errors.js'
import { modelNotReady } from '../../infer/errors.js'
import type { ModelConfig } from '../../infer/model-config.js'
import { allocateData, elementCount, recycleMovable } from '../../infer/tensor-data.js'
import type { Datatype, Tensor, TensorSpec } from '../../infer/types.js'
import type { CoreLogger } from '../../logger.js'
import type { Backend, BackendDescription, DevicePolicy } from '../backend.js'
import { BackendLoadError } from '../onnx-backend.js'
import { readTfjsModel, TfjsModelError, type TfjsModelFiles } from './tfjs-files.js'
import { dtypeOfProto, feedsFor, fromTfjs, specOf, TFJS_DTYPE, type TfjsTensorInfo } from './tfjs-tensors.js'
import { type TfjsLoaded, type TfjsMemory, TfjsWorker, TfjsWorkerExit } from './tfjs-worker.js'

/** KServe metadata's platform for TF.js models (Triton names TensorFlow's tensorflow_savedmodel / _graphdef). */
export const TFJS_PLATFORM = 'tensorflow_js'

/**
 * Why `device: auto` runs a TF.js model on the CPU: libtensorflow (tfjs-node, the CUDA path) cannot
 * be installed on these hosts, and tfjs's GPU backends (WebGL, WebGPU) need a browser.
 */
export const TFJS_CPU_ONLY =
  'TensorFlow.js models run on the CPU (tfjs-backend-wasm, WebAssembly SIMD): helix has no GPU backend for them'

export interface TfjsBackendOptions {
  /** The version's model.json; its weight shards lie beside it. */
  modelPath: string
  config: ModelConfig
  device: DevicePolicy
  label: string
  logger: CoreLogger
}

/** A graph model's signature entry in model.json (what tensorflowjs_converter writes from a SavedModel). */
interface SignatureEntry {
  name?: string
  dtype?: string
  tensorShape?: { dim?: { size?: string | number }[]; unknownRank?: boolean }
}

function fromSignature(entry: SignatureEntry | undefined): Partial<TfjsTensorInfo> {
  if (!entry) return {}
  const dtype = dtypeOfProto(entry.dtype)
  const shape =
    entry.tensorShape && !entry.tensorShape.unknownRank
      ? (entry.tensorShape.dim ?? []).map((d) => Number(d.size ?? -1))
      : undefined
  return { ...(dtype ? { dtype } : {}), ...(shape ? { shape } : {}) }
}

/** config.yaml's declaration of a tensor, as tfjs would report it (the batch dimension first when batching). */
function fromConfig(
  declared: ModelConfig['inputs'],
  name: string,
  batched: boolean,
): Partial<TfjsTensorInfo> {
  const entry = declared?.find((t) => t.name === name)
  if (!entry) return {}
  return {
    shape: batched ? [-1, ...entry.dims] : [...entry.dims],
    dtype: TFJS_DTYPE[entry.datatype as Datatype] ?? entry.datatype,
  }
}

/** A sample batch of zeros (empty strings, false) with dim 0 = `batch` and other dynamic dims = `other`. */
function probeInputs(specs: TensorSpec[], batch: number, other: number): Tensor[] {
  return specs.map((spec) => {
    const shape = spec.shape.map((d, i) => (d >= 0 ? d : i === 0 ? batch : other))
    return {
      name: spec.name,
      datatype: spec.datatype,
      shape,
      data: allocateData(spec.datatype, elementCount(shape)),
    }
  })
}

/** One instance: its worker thread, replaced when it dies. */
interface Slot {
  worker: TfjsWorker
  starting?: Promise<TfjsWorker>
}

/**
 * TensorFlow.js models (model.json + weight shards: graph models from tensorflowjs_converter, or
 * layers models) behind the Backend interface. Each instance (config `instances`, default 1) is a
 * worker thread with its own tfjs runtime on the WebAssembly backend, so runs never block the event
 * loop and instances compute in parallel. tfjs-backend-wasm was chosen over tfjs-backend-cpu (plain
 * JavaScript) by measurement: a 64→256→256→16 MLP on this 2-core host ran batch 64 in 1.3 ms on
 * wasm (SIMD, ~48k rows/s) and 15–28 ms on cpu (~2–4k rows/s); batch 256: 3.5–5 ms vs 100–130 ms.
 * Names, datatypes and shapes come from the model (a graph model's signature, a layers model's
 * inputs and outputs), then config.yaml, then — for outputs only — two probe runs.
 */
export class TfjsBackend implements Backend {
  private slots: Slot[] = []
  private loaded: TfjsLoaded | undefined
  private inputs: TensorSpec[] = []
  private outputs: TensorSpec[] = []
  private fallbackReason: string | undefined
  /** model.json's signature (graph models converted from a SavedModel carry one). */
  private signature: { inputs?: Record<string, SignatureEntry>; outputs?: Record<string, SignatureEntry> } =
    {}
  private disposed = false

  constructor(private readonly options: TfjsBackendOptions) {}

  async load(): Promise<void> {
    const { device, config, label, logger, modelPath } = this.options
    if (device === 'cuda' || device === 'webgpu') {
      throw new BackendLoadError(
        `device: ${device} was asked for, but ${TFJS_CPU_ONLY}; set device: cpu or auto, or convert the model to ONNX (python -m tf2onnx.convert) to run it on a GPU`,
      )
    }
    if (device === 'auto') this.fallbackReason = TFJS_CPU_ONLY
    const count = config.instances ?? 1
    const workers: TfjsWorker[] = []
    try {
      for (let i = 0; i < count; i++) {
        const worker = await this.start()
        workers.push(worker)
      }
      this.slots = workers.map((worker) => ({ worker }))
      await this.describeSignature()
    } catch (err) {
      this.slots = []
      await Promise.all(workers.map((w) => w.stop()))
      if (err instanceof BackendLoadError) throw err
      throw new BackendLoadError(
        `TensorFlow.js cannot load ${modelPath}: ${firstLine((err as Error).message)}`,
      )
    }
    if (this.fallbackReason) {
      logger.warn(
        { model: label, reason: this.fallbackReason },
        `${label}: device auto runs on the CPU: ${this.fallbackReason}`,
      )
    }
    const loaded = this.loaded as TfjsLoaded
    logger.info(
      { model: label, tfjs: loaded.version, backend: loaded.backend, instances: count },
      `${label} loaded in TensorFlow.js ${loaded.version} (${loaded.backend}) on the CPU`,
    )
  }

  /** A worker thread with the model loaded from disk. */
  private async start(): Promise<TfjsWorker> {
    let files: TfjsModelFiles
    try {
      files = await readTfjsModel(this.options.modelPath)
    } catch (err) {
      if (err instanceof TfjsModelError) throw new BackendLoadError(err.message)
      throw err
    }
    this.signature = (files.artifacts.signature ?? {}) as typeof this.signature
    const worker = new TfjsWorker()
    try {
      this.loaded = await worker.load(files)
    } catch (err) {
      await worker.stop()
      throw err
    }
    return worker
  }

  /** Inputs and outputs from the model, model.json's signature and config.yaml; probe runs for what is left. */
  private async describeSignature(): Promise<void> {
    const { config } = this.options
    const loaded = this.loaded as TfjsLoaded
    const signature = this.signature
    const batched = (config.max_batch_size ?? 1) > 0
    const complete = (
      info: TfjsTensorInfo,
      entries: Record<string, SignatureEntry> | undefined,
      declared: ModelConfig['inputs'],
    ) =>
      ({
        ...fromConfig(declared, info.name, batched),
        ...fromSignature(entries?.[info.name]),
        ...Object.fromEntries(Object.entries(info).filter(([, v]) => v !== undefined)),
      }) as TfjsTensorInfo
    const inputs = loaded.signature.inputs.map((i) => complete(i, signature.inputs, config.inputs))
    const outputs = loaded.signature.outputs.map((o) => complete(o, signature.outputs, config.outputs))
    this.inputs = inputs.map((info) => {
      if (info.shape === undefined || info.dtype === undefined) {
        throw new BackendLoadError(
          `input '${info.name}' has no ${info.dtype === undefined ? 'datatype' : 'shape'} in model.json; declare it in config.yaml inputs (name, datatype, dims)`,
        )
      }
      return specOf(info as Required<TfjsTensorInfo>, `input '${info.name}'`)
    })
    const unknown = outputs.filter((o) => o.shape === undefined || o.dtype === undefined)
    const probed =
      unknown.length > 0 ? await this.probe() : new Map<string, { dtype: string; shape: number[] }>()
    this.outputs = outputs.map((info) => {
      const known =
        info.shape !== undefined && info.dtype !== undefined ? info : { ...info, ...probed.get(info.name) }
      return specOf(known as Required<TfjsTensorInfo>, `output '${info.name}'`)
    })
  }

  /**
   * Outputs whose shape or datatype neither the model nor config.yaml gives (a frozen graph without
   * a signature) are learnt from two runs of zeros: a dimension that follows the batch (2, then 3)
   * or another dynamic input dimension (1, then 2) is dynamic (-1).
   */
  private async probe(): Promise<Map<string, { dtype: string; shape: number[] }>> {
    let first: Tensor[]
    let second: Tensor[]
    try {
      first = await this.runOn(this.slots[0].worker, probeInputs(this.inputs, 2, 1))
      second = await this.runOn(this.slots[0].worker, probeInputs(this.inputs, 3, 2))
    } catch (err) {
      throw new BackendLoadError(
        `the model's outputs have no shapes in model.json and a run of zeros failed (${firstLine((err as Error).message)}); declare them in config.yaml outputs (name, datatype, dims)`,
      )
    }
    return new Map(
      first.map((out, i) => {
        const other = second[i]
        const shape = out.shape.map((d, axis) =>
          other.shape.length === out.shape.length && other.shape[axis] === d ? d : -1,
        )
        return [out.name, { dtype: TFJS_DTYPE[out.datatype] as string, shape }]
      }),
    )
  }

  private async runOn(worker: TfjsWorker, inputs: Tensor[], outputNames?: string[]): Promise<Tensor[]> {
    const { feeds, transfer } = feedsFor(inputs, this.inputs)
    const { outputs, returned } = await worker.run(feeds, transfer, outputNames)
    for (const buffer of returned) recycleMovable(buffer)
    return outputs.map(fromTfjs)
  }

  /** The slot's worker, replacing it first when its thread died. */
  private async workerOf(slot: Slot): Promise<TfjsWorker> {
    if (slot.worker.alive) return slot.worker
    slot.starting ??= (async () => {
      try {
        slot.worker = await this.start()
      } finally {
        slot.starting = undefined
      }
      this.options.logger.info(
        { model: this.options.label },
        `${this.options.label}: TensorFlow.js worker restarted`,
      )
      return slot.worker
    })()
    return slot.starting
  }

  async run(inputs: Tensor[], outputNames?: string[]): Promise<Tensor[]> {
    const { label } = this.options
    if (this.disposed || this.slots.length === 0)
      throw modelNotReady(label, 'its TensorFlow.js workers are stopped')
    const slot = this.slots.reduce((a, b) => (b.worker.inFlight < a.worker.inFlight ? b : a))
    let worker: TfjsWorker
    try {
      worker = await this.workerOf(slot)
    } catch (err) {
      throw modelNotReady(
        label,
        `its TensorFlow.js worker failed to restart: ${firstLine((err as Error).message)}`,
      )
    }
    try {
      return await this.runOn(worker, inputs, outputNames)
    } catch (err) {
      if (!(err instanceof TfjsWorkerExit)) throw err // the model refused the batch: BACKEND_FAILED
      if (this.disposed) throw modelNotReady(label, err.message)
      void this.workerOf(slot).catch(() => {})
      throw modelNotReady(label, `${err.message}; the worker is being restarted`)
    }
  }

  /** tf.memory() of each instance's runtime (what a leak shows in). */
  async memory(): Promise<TfjsMemory[]> {
    return Promise.all(this.slots.map((s) => s.worker.memory()))
  }

  /** Disposes each instance's model (model.dispose, tf.disposeVariables) and stops its thread. */
  async dispose(): Promise<void> {
    this.disposed = true
    const slots = this.slots.splice(0)
    await Promise.all(slots.map((s) => s.worker.stop()))
  }

  describe(): BackendDescription {
    return {
      inputs: this.inputs,
      outputs: this.outputs,
      platform: TFJS_PLATFORM,
      executionProvider: 'cpu',
      device: 'cpu',
      instances: Math.max(1, this.slots.length),
      computesOffEventLoop: true,
      ...(this.fallbackReason ? { fallbackReason: this.fallbackReason } : {}),
    }
  }
}
