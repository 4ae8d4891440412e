import { loadConfig } from '../../shared/config.js'
import type { HelixHome } from '../../shared/home.js'
import { type NginxFlags, nginxOverrides, savedNginxSettings } from './nginx-settings.js'
import { type Artifact, type RenderReport, rerenderArtifact } from './render.js'

/**
 * `helix render <artifact>`: re-renders one artifact of an initialised helix directory from helix.yaml.
 * nginx flags (--upstream, --mtls) are saved into helix.yaml in the same all-or-nothing write.
 */
export async function renderOne(
  home: HelixHome,
  artifact: Artifact,
  flags: NginxFlags = {},
): Promise<RenderReport> {
  await home.requireInitialised()
  const overrides = nginxOverrides(flags)
  const config = await loadConfig(home, overrides ? { nginx: overrides } : {})
  const extra = overrides ? [await savedNginxSettings(home, overrides)] : []
  return rerenderArtifact(home, config, artifact, extra)
}
