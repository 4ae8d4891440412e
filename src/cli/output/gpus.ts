import type { GpuDiscovery } from '../../core/gpu/nvidia-smi.js'
import { renderTable } from './table.js'

/** `helix gpus` for humans: a table, or why there is none. */
export function renderGpus(discovery: GpuDiscovery): string {
  if (discovery.gpus.length === 0) {
    return `No NVIDIA GPU found: ${discovery.reason ?? 'nvidia-smi listed none'}.\nModels with device auto run on the CPU; device cuda models stay unavailable.`
  }
  return renderTable(
    ['INDEX', 'NAME', 'MEMORY USED', 'MEMORY FREE', 'UTIL', 'UUID'],
    discovery.gpus.map((g) => [
      g.index,
      g.name,
      `${g.memoryUsedMiB} / ${g.memoryTotalMiB} MiB`,
      `${g.memoryFreeMiB} MiB`,
      g.utilizationPercent === null ? 'n/a' : `${g.utilizationPercent}%`,
      g.uuid,
    ]),
  )
}
