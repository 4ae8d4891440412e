import { resolve } from 'node:path'
import type { HelixConfig } from '../../shared/config.js'
import type { HelixHome } from '../../shared/home.js'

/** The model repository directory helix.yaml points at (models.repository, relative to the helix directory). */
export function repositoryDir(home: HelixHome, config: HelixConfig): string {
  return resolve(home.root, config.models.repository)
}
