import { Gauge, type Registry } from 'prom-client'
import type { ModelIndexEntry } from '../infer/types.js'
import { type GpuStatsSample, type NvidiaSmiOptions, sampleGpuStats } from './gpu-stats.js'

const MIB = 1024 * 1024

/** Labels of the per-GPU series. */
type GpuLabels = 'gpu' | 'uuid' | 'name'

/**
 * The helix_gpu_* series, sampled from nvidia-smi every `intervalMs` in the background. nvidia-smi
 * runs as a child process (never on the event loop), one run at a time with a timeout; a run that
 * fails (driver error, hang, bad output) sets helix_gpu_up 0 and drops the per-GPU series, and a GPU
 * missing from a sample loses its series, so helix_gpu_count falls. When nvidia-smi is not installed
 * at all the sampler stops and registers nothing more: a box without a GPU shows no helix_gpu_*.
 */
export class GpuMetrics {
  private timer: NodeJS.Timeout | undefined
  private running: Promise<void> | undefined
  private last: GpuStatsSample | undefined
  private stopped = false
  private readonly up: Gauge
  private readonly count: Gauge
  private readonly utilization: Gauge<GpuLabels>
  private readonly memoryUsed: Gauge<GpuLabels>
  private readonly memoryTotal: Gauge<GpuLabels>
  private readonly temperature: Gauge<GpuLabels>
  private readonly power: Gauge<GpuLabels>

  constructor(
    private readonly registry: Registry,
    /** The model versions and their devices (cuda:N), read at scrape time for helix_gpu_model_info. */
    private readonly placement: () => ModelIndexEntry[],
    private readonly options: NvidiaSmiOptions & { intervalMs: number } = { intervalMs: 5000 },
  ) {
    const registers: Registry[] = []
    const labelNames = ['gpu', 'uuid', 'name'] as const
    this.up = new Gauge({
      name: 'helix_gpu_up',
      help: '1 when the last nvidia-smi run succeeded, 0 when it failed (driver error, hang, bad output).',
      registers,
    })
    this.count = new Gauge({
      name: 'helix_gpu_count',
      help: 'GPUs in the last successful nvidia-smi sample.',
      registers,
    })
    this.utilization = new Gauge({
      name: 'helix_gpu_utilization_ratio',
      help: 'GPU utilisation (0 to 1) as nvidia-smi reports it.',
      labelNames,
      registers,
    })
    this.memoryUsed = new Gauge({
      name: 'helix_gpu_memory_used_bytes',
      help: 'GPU memory in use, in bytes.',
      labelNames,
      registers,
    })
    this.memoryTotal = new Gauge({
      name: 'helix_gpu_memory_total_bytes',
      help: 'GPU memory in all, in bytes.',
      labelNames,
      registers,
    })
    this.temperature = new Gauge({
      name: 'helix_gpu_temperature_celsius',
      help: 'GPU core temperature in degrees Celsius.',
      labelNames,
      registers,
    })
    this.power = new Gauge({
      name: 'helix_gpu_power_watts',
      help: 'GPU power draw in watts.',
      labelNames,
      registers,
    })
    const gpuMetrics = this
    this.modelInfo = new Gauge({
      name: 'helix_gpu_model_info',
      help: '1 for each model version placed on a GPU (its device is cuda:<gpu>).',
      labelNames: ['gpu', 'uuid', 'model', 'version'] as const,
      registers,
      collect() {
        this.reset()
        const gpus = gpuMetrics.last?.gpus ?? []
        if (gpus.length === 0) return
        for (const entry of gpuMetrics.placement()) {
          if (entry.state !== 'READY' || !entry.device?.startsWith('cuda:')) continue
          const gpu = gpus.find((g) => `cuda:${g.index}` === entry.device)
          if (gpu)
            this.set({ gpu: String(gpu.index), uuid: gpu.uuid, model: entry.name, version: entry.version }, 1)
        }
      },
    })
  }

  private readonly modelInfo: Gauge

  /** Runs nvidia-smi once (or joins the run under way) and updates the series. */
  sample(): Promise<void> {
    this.running ??= sampleGpuStats(this.options)
      .then((sample) => this.apply(sample))
      .finally(() => {
        this.running = undefined
      })
    return this.running
  }

  /** The first sample, then one every intervalMs; resolves once the first sample is in. */
  async start(): Promise<void> {
    if (this.options.intervalMs <= 0) return
    await this.sample()
    if (this.stopped || this.last === undefined) return
    this.timer = setInterval(() => void this.sample(), this.options.intervalMs)
    this.timer.unref()
  }

  stop(): void {
    this.stopped = true
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }

  /** Whether the series are registered (nvidia-smi was found at least once). */
  get enabled(): boolean {
    return this.last !== undefined
  }

  private apply(sample: GpuStatsSample): void {
    if (this.last === undefined) {
      // No nvidia-smi on this box: no GPU, no series, no further runs.
      if (sample.reason?.includes('not found on PATH')) {
        this.stop()
        return
      }
      for (const metric of [
        this.up,
        this.count,
        this.utilization,
        this.memoryUsed,
        this.memoryTotal,
        this.temperature,
        this.power,
        this.modelInfo,
      ]) {
        this.registry.registerMetric(metric)
      }
    }
    this.last = sample
    for (const gauge of [this.utilization, this.memoryUsed, this.memoryTotal, this.temperature, this.power])
      gauge.reset()
    // A failed run (reason with no GPUs) is a driver problem; "listed no GPUs" is a working driver with none.
    const failed =
      sample.gpus.length === 0 && sample.reason !== undefined && !/listed no GPUs/.test(sample.reason)
    this.up.set(failed ? 0 : 1)
    if (failed) return
    this.count.set(sample.gpus.length)
    for (const gpu of sample.gpus) {
      const labels = { gpu: String(gpu.index), uuid: gpu.uuid, name: gpu.name }
      if (gpu.utilizationGpuPercent !== null) this.utilization.set(labels, gpu.utilizationGpuPercent / 100)
      this.memoryUsed.set(labels, gpu.memoryUsedMiB * MIB)
      this.memoryTotal.set(labels, gpu.memoryTotalMiB * MIB)
      if (gpu.temperatureCelsius !== null) this.temperature.set(labels, gpu.temperatureCelsius)
      if (gpu.powerDrawWatts !== null) this.power.set(labels, gpu.powerDrawWatts)
    }
  }
}
