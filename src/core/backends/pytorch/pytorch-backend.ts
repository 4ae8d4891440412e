import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { modelNotReady } from '../../infer/errors.js'
import type { ModelConfig } from '../../infer/model-config.js'
import type { Tensor, TensorSpec } from '../../infer/types.js'
import type { CoreLogger } from '../../logger.js'
import type { Backend, BackendDescription, DevicePolicy } from '../backend.js'
import { BackendLoadError } from '../onnx-backend.js'
import { resolveChannel, type TorchChannelSetting, TorchWorker, type WorkerHello } from './torch-worker.js'

/** helix.yaml backends.pytorch. */
export interface PytorchSettings {
  /** The Python that runs the workers (default /usr/bin/python3, Debian's, which python3-torch serves). */
  python?: string
  /** Seconds a batch may take before its worker counts as hung and is restarted (default 60). */
  run_timeout_s?: number
  /** How tensors move between the daemon and the workers: a file in /dev/shm, the pipe, or auto (default: shm where /dev/shm exists). */
  channel?: TorchChannelSetting
}

export const DEFAULT_PYTHON = '/usr/bin/python3'
export const DEFAULT_RUN_TIMEOUT_S = 60
export const DEFAULT_CHANNEL: TorchChannelSetting = 'auto'

/** python/helix_torch_worker.py of the installed package (the same depth from src/ and dist/). */
export const WORKER_SCRIPT = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  '..',
  'python',
  'helix_torch_worker.py',
)

export interface PytorchBackendOptions {
  modelPath: string
  config: ModelConfig
  device: DevicePolicy
  settings: PytorchSettings
  label: string
  logger: CoreLogger
}

/** The specs of config.yaml inputs or outputs: dims, with the batch dimension first unless batching is off. */
function specsFrom(tensors: NonNullable<ModelConfig['inputs']>, batched: boolean): TensorSpec[] {
  return tensors.map((t) => ({
    name: t.name,
    datatype: t.datatype as TensorSpec['datatype'],
    shape: batched ? [-1, ...t.dims] : [...t.dims],
  }))
}

/** One instance: its current worker, restarted when it dies. */
interface Slot {
  worker: TorchWorker
  starting?: Promise<TorchWorker>
}

/**
 * TorchScript behind the Backend interface: one long-lived Python worker per instance, each
 * running batches the scheduler hands it; a worker that dies or hangs fails its in-flight batch
 * with MODEL_NOT_READY (503) and is restarted, while other models keep serving.
 */
export class PytorchBackend implements Backend {
  private slots: Slot[] = []
  private hello: WorkerHello | undefined
  private inputs: TensorSpec[] = []
  private outputs: TensorSpec[] = []
  private disposed = false

  constructor(private readonly options: PytorchBackendOptions) {}

  private get python(): string {
    return this.options.settings.python ?? DEFAULT_PYTHON
  }

  async load(): Promise<void> {
    const { config, device, label } = this.options
    if (!config.inputs || !config.outputs) {
      throw new BackendLoadError(
        `config.yaml must declare inputs and outputs (name, datatype, dims): a TorchScript model.pt carries no tensor names`,
      )
    }
    if (device === 'webgpu')
      throw new BackendLoadError('the pytorch backend has no webgpu device; use cuda, cpu or auto')
    if (!existsSync(WORKER_SCRIPT))
      throw new BackendLoadError(`the PyTorch worker script ${WORKER_SCRIPT} is missing`)
    const batched = (config.max_batch_size ?? 1) > 0
    this.inputs = specsFrom(config.inputs, batched)
    this.outputs = specsFrom(config.outputs, batched)
    const count = config.instances ?? 1
    const workers: TorchWorker[] = []
    try {
      for (let i = 0; i < count; i++) {
        const worker = this.spawn()
        workers.push(worker)
        this.hello = await worker.ready
      }
    } catch (err) {
      await Promise.all(workers.map((w) => w.stop()))
      throw new BackendLoadError((err as Error).message)
    }
    this.slots = workers.map((worker) => ({ worker }))
    const hello = this.hello as WorkerHello
    if (hello.fallback) {
      this.options.logger.warn(
        { model: label, reason: hello.fallback },
        `${label}: device auto fell back to the CPU: ${hello.fallback}`,
      )
    }
    this.options.logger.info(
      { model: label, device: hello.device, torch: hello.torch, instances: count },
      `${label} loaded in PyTorch ${hello.torch} on ${hello.device} (${hello.device_name})`,
    )
  }

  private spawn(): TorchWorker {
    const { config, modelPath, device } = this.options
    return new TorchWorker(
      this.python,
      WORKER_SCRIPT,
      {
        model: modelPath,
        device,
        gpu: config.gpu ?? null,
        threads: config.intra_op_threads || null,
        inputs: (config.inputs ?? []).map((t) => ({ name: t.name, datatype: t.datatype })),
        outputs: (config.outputs ?? []).map((t) => ({ name: t.name, datatype: t.datatype })),
      },
      resolveChannel(this.options.settings.channel ?? DEFAULT_CHANNEL),
    )
  }

  /** The slot's worker, restarting it first when it died. */
  private async workerOf(slot: Slot): Promise<TorchWorker> {
    if (slot.worker.alive) return slot.worker
    slot.starting ??= (async () => {
      const worker = this.spawn()
      try {
        await worker.ready
      } finally {
        slot.starting = undefined
      }
      slot.worker = worker
      this.options.logger.info(
        { model: this.options.label, pid: worker.pid },
        `${this.options.label}: PyTorch worker restarted`,
      )
      return worker
    })()
    return slot.starting
  }

  async run(inputs: Tensor[], outputNames?: string[]): Promise<Tensor[]> {
    const { label, logger } = this.options
    if (this.disposed || this.slots.length === 0)
      throw modelNotReady(label, 'its PyTorch workers are stopped')
    const slot = this.slots.reduce((a, b) => (b.worker.inFlight < a.worker.inFlight ? b : a))
    let worker: TorchWorker
    try {
      worker = await this.workerOf(slot)
    } catch (err) {
      throw modelNotReady(label, `its PyTorch worker failed to restart: ${(err as Error).message}`)
    }
    const timeoutS = this.options.settings.run_timeout_s ?? DEFAULT_RUN_TIMEOUT_S
    const timer = setTimeout(
      () => worker.kill(`the PyTorch worker did not answer within ${timeoutS} s and was restarted`),
      timeoutS * 1000,
    )
    let outputs: Tensor[]
    try {
      outputs = await worker.run(inputs, outputNames)
    } catch (err) {
      if (worker.alive) throw err // the model raised: BACKEND_FAILED with its message
      const reason = (err as Error).message
      logger.error({ model: label, pid: worker.pid, reason }, `${label}: ${reason}; restarting it`)
      if (this.disposed) throw modelNotReady(label, reason)
      void this.workerOf(slot).catch(() => {})
      throw modelNotReady(label, `${reason}; the worker is being restarted`)
    } finally {
      clearTimeout(timer)
    }
    for (const out of outputs) this.checkShape(out, inputs[0]?.shape[0])
    return outputs
  }

  /** An output must have the rank and fixed dims config.yaml declares (and the batch's size first). */
  private checkShape(out: Tensor, batch: number | undefined): void {
    const spec = this.outputs.find((s) => s.name === out.name)
    if (!spec) return
    const fits =
      spec.shape.length === out.shape.length &&
      spec.shape.every((d, i) => d === -1 || d === out.shape[i]) &&
      (spec.shape[0] !== -1 || batch === undefined || out.shape[0] === batch)
    if (!fits) {
      const dims = (this.options.config.outputs ?? []).find((o) => o.name === out.name)?.dims ?? []
      throw new Error(
        `output '${out.name}' has shape [${out.shape.join(', ')}] but config.yaml declares dims [${dims.join(', ')}]${spec.shape[0] === -1 ? ' after the batch dimension' : ''}`,
      )
    }
  }

  async dispose(): Promise<void> {
    this.disposed = true
    const slots = this.slots.splice(0)
    await Promise.all(slots.map((s) => s.worker.stop('the model was unloaded')))
  }

  describe(): BackendDescription {
    const device = this.hello?.device ?? 'cpu'
    return {
      inputs: this.inputs,
      outputs: this.outputs,
      platform: 'pytorch_libtorch',
      executionProvider: device.startsWith('cuda') ? 'cuda' : 'cpu',
      device,
      instances: Math.max(1, this.slots.length),
      computesOffEventLoop: true,
      ...(this.hello?.fallback ? { fallbackReason: this.hello.fallback } : {}),
    }
  }
}
