import type { ModelConfig } from './model-config.js'

/**
 * The versions to load, newest first, per version_policy (Triton's default is the latest one).
 * Versions the traffic split or the shadow name are loaded too, so a config never routes to a
 * version that the policy left out.
 */
export function selectVersions(available: number[], config: ModelConfig): number[] {
  const sorted = [...new Set(available)].sort((a, b) => b - a)
  const policy = config.version_policy ?? { latest: 1 }
  let chosen: number[]
  if ('all' in policy) chosen = sorted
  else if ('specific' in policy) chosen = sorted.filter((v) => policy.specific.includes(v))
  else chosen = sorted.slice(0, policy.latest)
  const named = [
    ...(config.traffic ?? []).filter((t) => t.weight > 0).map((t) => t.version),
    ...(config.shadow ? [config.shadow.version] : []),
  ]
  for (const v of named) if (sorted.includes(v) && !chosen.includes(v)) chosen.push(v)
  return chosen.sort((a, b) => b - a)
}
