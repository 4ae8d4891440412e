import { readFile } from 'node:fs/promises'
import { isMap, parseDocument } from 'yaml'
import { UserError } from '../../shared/errors.js'
import type { HelixHome } from '../../shared/home.js'
import { checkUpstream } from './render-inputs.js'
import type { RenderedFile } from './rendered-file.js'

/** nginx settings given as flags of `helix render nginx`. */
export interface NginxFlags {
  upstreams?: string[]
  mtls?: boolean
}

/** The helix.yaml `nginx` keys the flags set, validated; undefined when no flag was given. */
export function nginxOverrides(flags: NginxFlags): Record<string, unknown> | undefined {
  const overrides: Record<string, unknown> = {}
  if (flags.upstreams?.length) overrides.upstreams = [...new Set(flags.upstreams.map(checkUpstream))]
  if (flags.mtls !== undefined) overrides.mtls = flags.mtls
  return Object.keys(overrides).length > 0 ? overrides : undefined
}

/**
 * helix.yaml with the flag settings saved into its `nginx` section, comments and layout kept, so the
 * next `render monitoring` (and every later render) uses the same upstreams.
 */
export async function savedNginxSettings(
  home: HelixHome,
  overrides: Record<string, unknown>,
): Promise<RenderedFile> {
  const doc = parseDocument(await readFile(home.configFile, 'utf8'))
  if (doc.errors.length > 0 || (doc.contents !== null && !isMap(doc.contents))) {
    throw new UserError(
      'CONFIG_INVALID',
      `${home.configFile} is not a YAML mapping, so the nginx flags cannot be saved.`,
      {
        hint: 'Fix helix.yaml (or delete it and run `helix init`), then render again.',
      },
    )
  }
  if (!isMap(doc.getIn(['nginx']))) doc.setIn(['nginx'], doc.createNode({}))
  for (const [key, value] of Object.entries(overrides)) {
    doc.setIn(['nginx', key], doc.createNode(value, { flow: true }))
  }
  return { path: home.configFile, data: doc.toString() }
}
