import { execa } from 'execa'

/** One NVIDIA GPU as nvidia-smi reports it (memory in MiB, utilisation in percent). */
export interface GpuInfo {
  index: number
  uuid: string
  name: string
  memoryTotalMiB: number
  memoryUsedMiB: number
  memoryFreeMiB: number
  /** GPU utilisation in percent; null when the driver reports [N/A]. */
  utilizationPercent: number | null
}

/** The result of looking for GPUs: the list, and why it is empty when it is. */
export interface GpuDiscovery {
  gpus: GpuInfo[]
  /** Why no GPU was found (nvidia-smi missing, driver error); absent when the query worked. */
  reason?: string
}

export const GPU_QUERY_FIELDS = 'index,uuid,name,memory.total,memory.used,utilization.gpu'
export const NVIDIA_SMI_ARGS = [`--query-gpu=${GPU_QUERY_FIELDS}`, '--format=csv,noheader,nounits']

function parseNumber(text: string, field: string, line: string): number {
  const value = Number(text)
  if (text === '' || !Number.isFinite(value))
    throw new Error(`nvidia-smi: bad ${field} '${text}' in line '${line}'`)
  return value
}

/**
 * Parses `nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu
 * --format=csv,noheader,nounits` output. Names never contain commas in practice, but the name is
 * taken as everything between the uuid and the last three fields so one would not break parsing.
 */
export function parseGpuQuery(csv: string): GpuInfo[] {
  const gpus: GpuInfo[] = []
  for (const raw of csv.split('\n')) {
    const line = raw.trim()
    if (line === '') continue
    const parts = line.split(',').map((p) => p.trim())
    if (parts.length < 6)
      throw new Error(`nvidia-smi: expected 6 fields, got ${parts.length} in line '${line}'`)
    const [index, uuid] = parts
    const tail = parts.slice(-3)
    const name = parts.slice(2, -3).join(', ')
    const total = parseNumber(tail[0], 'memory.total', line)
    const used = parseNumber(tail[1], 'memory.used', line)
    // Some GPUs (and MIG slices) report utilisation as [N/A] or [Not Supported].
    const utilization = /^\[.*\]$/.test(tail[2]) ? null : parseNumber(tail[2], 'utilization.gpu', line)
    gpus.push({
      index: parseNumber(index, 'index', line),
      uuid,
      name,
      memoryTotalMiB: total,
      memoryUsedMiB: used,
      memoryFreeMiB: Math.max(0, total - used),
      utilizationPercent: utilization,
    })
  }
  return gpus
}

/** How to run nvidia-smi (tests put a fake one that prints recorded output on PATH). */
export interface NvidiaSmiOptions {
  command?: string
  timeoutMs?: number
  env?: NodeJS.ProcessEnv
}

/**
 * Runs nvidia-smi with `args` and parses what it prints. Never throws: a missing binary, a driver
 * error, a hang or unparsable output become an empty list with the reason, because "no GPU" is a
 * normal state.
 */
export async function queryNvidiaSmi<T>(
  args: readonly string[],
  parse: (stdout: string) => T[],
  options: NvidiaSmiOptions = {},
): Promise<{ gpus: T[]; reason?: string }> {
  const command = options.command ?? 'nvidia-smi'
  const timeoutMs = options.timeoutMs ?? 10_000
  const result = await execa(command, args, {
    reject: false,
    timeout: timeoutMs,
    ...(options.env ? { env: options.env } : {}),
    stdin: 'ignore',
  })
  if ((result as { code?: string }).code === 'ENOENT') {
    return { gpus: [], reason: `${command} not found on PATH (no NVIDIA driver installed?)` }
  }
  if (result.timedOut) return { gpus: [], reason: `${command} did not answer within ${timeoutMs} ms` }
  if (result.exitCode !== 0) {
    const said = `${String(result.stdout)}\n${String(result.stderr)}`
      .split('\n')
      .find((l) => l.trim() !== '')
      ?.trim()
    return {
      gpus: [],
      reason: `${command} failed (exit ${result.exitCode ?? 'signal'}): ${said ?? 'no output'}`,
    }
  }
  try {
    const gpus = parse(String(result.stdout))
    return gpus.length > 0 ? { gpus } : { gpus, reason: `${command} listed no GPUs` }
  } catch (err) {
    return { gpus: [], reason: (err as Error).message }
  }
}

/** The GPUs nvidia-smi sees (name, memory, utilisation), or none with the reason. */
export function discoverGpus(options: NvidiaSmiOptions = {}): Promise<GpuDiscovery> {
  return queryNvidiaSmi(NVIDIA_SMI_ARGS, parseGpuQuery, options)
}
