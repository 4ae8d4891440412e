/** One generated file: where it goes and what it holds, before anything is written. */
export interface RenderedFile {
  /** Absolute path inside the helix directory. */
  path: string
  data: string
  /** Unix permissions (0o600 for secrets). */
  mode?: number
  /**
   * A secret generated once (e.g. the compose database password): re-rendering never replaces it,
   * because the data it protects (a database volume) was initialised with it.
   */
  generatedSecret?: boolean
}
