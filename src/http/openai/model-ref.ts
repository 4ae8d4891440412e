/**
 * The `model` of a /v1 body: a repository model name (the traffic policy picks the version), or
 * `name:version` for one version. Repository names never hold a colon, so the first one splits.
 */
export interface ModelRef {
  name: string
  version?: string
}

export function parseModelRef(model: string): ModelRef {
  const at = model.indexOf(':')
  if (at <= 0 || at === model.length - 1) return { name: model }
  return { name: model.slice(0, at), version: model.slice(at + 1) }
}
