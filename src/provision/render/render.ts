// STUB — replaced by the render work.
import type { HelixConfig } from '../../shared/config.js'
import type { FileReport } from '../../shared/file-report.js'
import type { HelixHome } from '../../shared/home.js'

export const ARTIFACTS = ['nginx', 'docker', 'helm', 'monitoring'] as const
export type Artifact = (typeof ARTIFACTS)[number]

export async function renderArtifacts(
  _home: HelixHome,
  _config: HelixConfig,
  _artifacts: readonly Artifact[],
  _opts: { force?: boolean } = {},
): Promise<FileReport> {
  return { created: [], kept: [] }
}
