import { type NvidiaSmiOptions, queryNvidiaSmi } from '../gpu/nvidia-smi.js'

/**
 * Live state of one NVIDIA GPU. Memory in MiB, utilisation in percent, temperature in °C, power in W;
 * a field is null where nvidia-smi reports [N/A] or [Not Supported] (MIG slices, some boards).
 */
export interface GpuStats {
  index: number
  uuid: string
  name: string
  memoryTotalMiB: number
  memoryUsedMiB: number
  memoryFreeMiB: number
  utilizationGpuPercent: number | null
  utilizationMemoryPercent: number | null
  temperatureCelsius: number | null
  powerDrawWatts: number | null
  powerLimitWatts: number | null
  driverVersion: string
  pciBusId: string
  computeCapability: string
}

export interface GpuStatsSample {
  gpus: GpuStats[]
  /** Why the list is empty (no nvidia-smi, a driver error); absent when the query worked. */
  reason?: string
  sampledAt: Date
}

/** The fields asked for, in this order (the order the recorded test fixtures have). */
export const GPU_STATS_FIELDS = [
  'index',
  'uuid',
  'name',
  'memory.total',
  'memory.used',
  'memory.free',
  'utilization.gpu',
  'utilization.memory',
  'temperature.gpu',
  'power.draw',
  'power.limit',
  'driver_version',
  'pci.bus_id',
  'compute_cap',
] as const

export const GPU_STATS_ARGS = [`--query-gpu=${GPU_STATS_FIELDS.join(',')}`, '--format=csv,noheader,nounits']

export type { NvidiaSmiOptions }

const notReported = (text: string) => /^\[.*\]$/.test(text) || text === 'N/A'

function numberField(text: string, field: string, line: string): number {
  const value = Number(text)
  if (text === '' || !Number.isFinite(value))
    throw new Error(`nvidia-smi: bad ${field} '${text}' in line '${line}'`)
  return value
}

function optionalNumber(text: string, field: string, line: string): number | null {
  return notReported(text) ? null : numberField(text, field, line)
}

/**
 * Parses the CSV of GPU_STATS_ARGS. The name is everything between the uuid and the last eleven
 * fields, so a comma in a name would not shift the others.
 */
export function parseGpuStats(csv: string): GpuStats[] {
  const tailFields = GPU_STATS_FIELDS.length - 3
  const gpus: GpuStats[] = []
  for (const raw of csv.split('\n')) {
    const line = raw.trim()
    if (line === '') continue
    const parts = line.split(',').map((p) => p.trim())
    if (parts.length < GPU_STATS_FIELDS.length) {
      throw new Error(
        `nvidia-smi: expected ${GPU_STATS_FIELDS.length} fields, got ${parts.length} in line '${line}'`,
      )
    }
    const tail = parts.slice(-tailFields)
    const [total, used, free, utilGpu, utilMemory, temperature, powerDraw, powerLimit] = tail
    const memoryTotalMiB = numberField(total, 'memory.total', line)
    const memoryUsedMiB = numberField(used, 'memory.used', line)
    gpus.push({
      index: numberField(parts[0], 'index', line),
      uuid: parts[1],
      name: parts.slice(2, -tailFields).join(', '),
      memoryTotalMiB,
      memoryUsedMiB,
      memoryFreeMiB: notReported(free)
        ? Math.max(0, memoryTotalMiB - memoryUsedMiB)
        : numberField(free, 'memory.free', line),
      utilizationGpuPercent: optionalNumber(utilGpu, 'utilization.gpu', line),
      utilizationMemoryPercent: optionalNumber(utilMemory, 'utilization.memory', line),
      temperatureCelsius: optionalNumber(temperature, 'temperature.gpu', line),
      powerDrawWatts: optionalNumber(powerDraw, 'power.draw', line),
      powerLimitWatts: optionalNumber(powerLimit, 'power.limit', line),
      driverVersion: tail[8],
      pciBusId: tail[9],
      computeCapability: tail[10],
    })
  }
  return gpus
}

/** Runs nvidia-smi once: live stats per GPU, or none with the reason (never throws). */
export async function sampleGpuStats(options: NvidiaSmiOptions = {}): Promise<GpuStatsSample> {
  const sampledAt = new Date()
  return { ...(await queryNvidiaSmi(GPU_STATS_ARGS, parseGpuStats, options)), sampledAt }
}

/**
 * nvidia-smi takes tens of milliseconds and a driver call per run, so callers that poll (WatchStats
 * at 100 ms, several dashboards) share one sample while it is younger than `maxAgeMs`, and concurrent
 * callers share one run.
 */
export class GpuSampler {
  private last: GpuStatsSample | undefined
  private running: Promise<GpuStatsSample> | undefined

  constructor(
    private readonly options: NvidiaSmiOptions = {},
    private readonly maxAgeMs = 1000,
  ) {}

  async sample(): Promise<GpuStatsSample> {
    if (this.last && Date.now() - this.last.sampledAt.getTime() < this.maxAgeMs) return this.last
    this.running ??= sampleGpuStats(this.options).then(
      (sample) => {
        this.last = sample
        this.running = undefined
        return sample
      },
      (err: unknown) => {
        this.running = undefined
        throw err
      },
    )
    return this.running
  }
}
