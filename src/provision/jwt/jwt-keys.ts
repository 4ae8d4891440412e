// STUB — replaced by the JWT keys work.
import type { HelixConfig } from '../../shared/config.js'
import type { FileReport } from '../../shared/file-report.js'
import type { HelixHome } from '../../shared/home.js'

export async function ensureJwtKeys(_home: HelixHome, _config: HelixConfig, _opts: { force?: boolean } = {}): Promise<FileReport> {
  return { created: [], kept: [] }
}
