import { readFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { commitFiles } from '../../shared/atomic-write.js'
import type { HelixConfig } from '../../shared/config.js'
import type { FileReport } from '../../shared/file-report.js'
import type { HelixHome } from '../../shared/home.js'
import { packageRoot, planDocker } from './docker-values.js'
import { planHelm } from './helm-values.js'
import { planMonitoring } from './monitoring-values.js'
import { planNginx } from './nginx-values.js'
import type { RenderedFile } from './rendered-file.js'

export const ARTIFACTS = ['nginx', 'docker', 'helm', 'monitoring'] as const
export type Artifact = (typeof ARTIFACTS)[number]

/** What `helix render <artifact>` did; paths are relative to the helix directory. */
export interface RenderReport {
  artifact: Artifact
  /** Files that did not exist before. */
  created: string[]
  /** Files whose content changed. */
  updated: string[]
  /** Files already holding exactly what was rendered (and generated secrets, which are kept). */
  unchanged: string[]
}

let cachedVersion: string | undefined

/** The helix version: image tags and the chart version follow it. */
async function helixVersion(): Promise<string> {
  cachedVersion ??= (
    JSON.parse(await readFile(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }
  ).version
  return cachedVersion
}

/** Renders every file of one artifact in memory; nothing is written yet. */
export async function planArtifact(
  home: HelixHome,
  config: HelixConfig,
  artifact: Artifact,
): Promise<RenderedFile[]> {
  switch (artifact) {
    case 'nginx':
      return planNginx(home, config)
    case 'docker':
      return planDocker(home, config, await helixVersion())
    case 'helm':
      return planHelm(home, config, await helixVersion())
    case 'monitoring':
      return planMonitoring(home, config)
  }
}

/**
 * Renders the artifacts in memory only, so `helix init` can refuse a bad value (an upstream, an
 * allowlist entry) before it writes its first key or certificate.
 */
export async function checkArtifacts(
  home: HelixHome,
  config: HelixConfig,
  artifacts: readonly Artifact[],
): Promise<void> {
  for (const artifact of artifacts) await planArtifact(home, config, artifact)
}

async function currentContent(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/**
 * `helix init`'s part: renders the given artifacts. A file that exists is kept byte-identical (and
 * reported kept) unless `force`; generated secrets are always kept. Every file is planned first, so a
 * bad value in helix.yaml fails before anything is written, and the writes are all-or-nothing.
 */
export async function renderArtifacts(
  home: HelixHome,
  config: HelixConfig,
  artifacts: readonly Artifact[],
  opts: { force?: boolean } = {},
): Promise<FileReport> {
  const planned: RenderedFile[] = []
  for (const artifact of artifacts) planned.push(...(await planArtifact(home, config, artifact)))
  const report: FileReport = { created: [], kept: [] }
  const toWrite: RenderedFile[] = []
  for (const file of planned) {
    const exists = (await currentContent(file.path)) !== undefined
    if (exists && (!opts.force || file.generatedSecret)) {
      report.kept.push(relative(home.root, file.path))
    } else {
      toWrite.push(file)
      report.created.push(relative(home.root, file.path))
    }
  }
  await commitFiles(toWrite)
  return report
}

/**
 * `helix render <artifact>`: always re-renders it from the current helix.yaml and writes only the
 * files whose content changed (all-or-nothing), reporting created, updated and unchanged files.
 * `extra` files (helix.yaml with settings given as flags) are committed in the same batch.
 */
export async function rerenderArtifact(
  home: HelixHome,
  config: HelixConfig,
  artifact: Artifact,
  extra: RenderedFile[] = [],
): Promise<RenderReport> {
  const planned = [...extra, ...(await planArtifact(home, config, artifact))]
  const report: RenderReport = { artifact, created: [], updated: [], unchanged: [] }
  const toWrite: RenderedFile[] = []
  for (const file of planned) {
    const name = relative(home.root, file.path)
    const current = await currentContent(file.path)
    if (current === undefined) {
      report.created.push(name)
      toWrite.push(file)
    } else if (current === file.data || file.generatedSecret) {
      report.unchanged.push(name)
    } else {
      report.updated.push(name)
      toWrite.push(file)
    }
  }
  await commitFiles(toWrite)
  return report
}
