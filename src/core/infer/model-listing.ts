import type { DevicePolicy } from '../backends/backend.js'
import type { GpuDiscovery } from '../gpu/nvidia-smi.js'
import { createModelService } from './model-service.js'
import { scanRepository } from './repository.js'
import type { ModelIndexEntry } from './types.js'

/**
 * The repository as `helix models list` shows it without a daemon: every model is really loaded
 * (so a corrupt file or a bad config shows as UNAVAILABLE with its reason), then everything is
 * released again.
 */
export async function listRepository(
  repositoryDir: string,
  options: { defaultDevice?: DevicePolicy; gpuDiscovery?: () => Promise<GpuDiscovery> } = {},
): Promise<ModelIndexEntry[]> {
  const service = await createModelService({
    repositoryDir,
    defaultDevice: options.defaultDevice,
    gpuDiscovery: options.gpuDiscovery,
  })
  try {
    const rows: ModelIndexEntry[] = service.index().map((row) => {
      // Queues exist only in a running daemon.
      const { queueDepth: _queueDepth, queueCapacity: _queueCapacity, ...rest } = row
      return rest
    })
    // Versions on disk that the version policy leaves out are listed too, so nothing is hidden.
    for (const model of await scanRepository(repositoryDir)) {
      for (const version of model.versions.map(String)) {
        if (!rows.some((r) => r.name === model.name && r.version === version)) {
          rows.push({
            name: model.name,
            version,
            state: 'UNAVAILABLE',
            reason: 'not selected by version_policy',
          })
        }
      }
    }
    return rows.sort((a, b) => a.name.localeCompare(b.name) || Number(a.version) - Number(b.version))
  } finally {
    await service.close()
  }
}
