/**
 * What a loaded model is counted as against helix.yaml models.memory_budget: an estimate from its
 * file size, made before it loads so a load that would not fit can make room first (a measured RSS
 * delta would come only after the memory is taken, and several models load at once). Per instance:
 * a fixed cost, measured with the many-models bench (bench/README.md: 500 MLPs of 2.7 KB took
 * 248 MiB resident against 170 MiB for one, ~0.16 MiB each), plus the weights twice over, as
 * onnxruntime keeps the initializers and, for MatMul and Conv, their prepacked copies.
 */
export const SESSION_OVERHEAD_BYTES = 256 * 1024
export const WEIGHT_COPIES = 2

/** Estimated resident bytes of a model version with this file size and instances. */
export function estimateModelMemory(fileBytes: number, instances: number): number {
  return Math.max(1, instances) * (SESSION_OVERHEAD_BYTES + WEIGHT_COPIES * fileBytes)
}

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }

/** Bytes of a budget written as in helix.yaml: a number of bytes, or with a k, m or g suffix ("2g"). */
export function parseMemorySize(value: string | number): number {
  if (typeof value === 'number') return value
  const match = /^([0-9]+)([kmg]?)$/i.exec(value.trim())
  if (!match) throw new Error(`'${value}' is not a size (bytes, or a number with k, m or g: 512m, 2g)`)
  return Number(match[1]) * UNITS[match[2].toLowerCase()]
}

export const MiB = (bytes: number): string => `${Math.round(bytes / 1024 ** 2)} MiB`
