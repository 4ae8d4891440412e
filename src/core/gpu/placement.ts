import type { GpuInfo } from './nvidia-smi.js'

export interface PlacementRequest {
  /** A GPU index the model is pinned to (config `gpu`). */
  pinned?: number
  /** Device memory the model may use, in MiB (config `memory_budget_mb`). */
  memoryBudgetMiB?: number
}

export type Placement = { ok: true; gpu: GpuInfo } | { ok: false; reason: string }

/**
 * Chooses a GPU for one model: the pinned one when given, else the one with the most free memory
 * (after what earlier models reserved; ties go to the lowest index). A memory budget that does not
 * fit is a refusal, not a silent overcommit.
 */
export function placeModel(
  gpus: GpuInfo[],
  request: PlacementRequest,
  reservedMiB: ReadonlyMap<number, number> = new Map(),
): Placement {
  const free = (gpu: GpuInfo) => gpu.memoryFreeMiB - (reservedMiB.get(gpu.index) ?? 0)
  const budget = request.memoryBudgetMiB ?? 0
  if (gpus.length === 0) return { ok: false, reason: 'no GPU found' }
  if (request.pinned !== undefined) {
    const gpu = gpus.find((g) => g.index === request.pinned)
    if (!gpu) {
      return {
        ok: false,
        reason: `gpu ${request.pinned} does not exist (found ${gpus.map((g) => g.index).join(', ')})`,
      }
    }
    if (free(gpu) < budget) {
      return {
        ok: false,
        reason: `gpu ${gpu.index} has ${free(gpu)} MiB free, below the memory budget of ${budget} MiB`,
      }
    }
    return { ok: true, gpu }
  }
  const ranked = [...gpus].sort((a, b) => free(b) - free(a) || a.index - b.index)
  const best = ranked[0]
  if (free(best) < budget) {
    return {
      ok: false,
      reason: `no GPU has ${budget} MiB free (most free: gpu ${best.index} with ${free(best)} MiB)`,
    }
  }
  return { ok: true, gpu: best }
}

/** Keeps track of memory budgets handed out per GPU so later placements see what is left. */
export class GpuReservations {
  private readonly reserved = new Map<number, number>()

  get snapshot(): ReadonlyMap<number, number> {
    return this.reserved
  }

  reserve(gpuIndex: number, mib: number): () => void {
    this.reserved.set(gpuIndex, (this.reserved.get(gpuIndex) ?? 0) + mib)
    let released = false
    return () => {
      if (released) return
      released = true
      this.reserved.set(gpuIndex, (this.reserved.get(gpuIndex) ?? 0) - mib)
    }
  }
}
