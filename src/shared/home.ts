import { constants } from 'node:fs'
import { access, mkdir, stat } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { UserError } from './errors.js'

export const DEFAULT_HELIX_DIR = './.helix'

/**
 * The helix directory (README.md "The helix directory"): every generated file, key, model and the
 * embedded database live below one root chosen with --dir / HELIX_DIR.
 */
export class HelixHome {
  readonly root: string

  constructor(root: string = DEFAULT_HELIX_DIR) {
    this.root = resolve(root)
  }

  path(...parts: string[]): string {
    return join(this.root, ...parts)
  }

  get configFile(): string {
    return this.path('helix.yaml')
  }
  get certsDir(): string {
    return this.path('certs')
  }
  get keysDir(): string {
    return this.path('keys')
  }
  get nginxDir(): string {
    return this.path('nginx')
  }
  get dockerDir(): string {
    return this.path('docker')
  }
  get helmDir(): string {
    return this.path('helm', 'helix')
  }
  get monitoringDir(): string {
    return this.path('monitoring')
  }
  get modelsDir(): string {
    return this.path('models')
  }
  get dataDir(): string {
    return this.path('data')
  }

  /** True once `helix init` has written helix.yaml here. */
  async isInitialised(): Promise<boolean> {
    return exists(this.configFile)
  }

  /** Fails with a clear UserError unless `helix init` has run in this directory. */
  async requireInitialised(): Promise<void> {
    if (!(await this.isInitialised())) {
      throw new UserError('NOT_INITIALISED', `No helix directory at ${this.root} (helix.yaml is missing).`, {
        hint: 'Run `helix init` first, or point --dir / HELIX_DIR at an existing helix directory.',
      })
    }
  }

  /**
   * Checks that the root can be created and written before anything is generated, so a bad --dir
   * fails at once and writes nothing.
   */
  async ensureWritable(): Promise<void> {
    let probe = this.root
    while (!(await exists(probe))) {
      const parent = dirname(probe)
      if (parent === probe) break
      probe = parent
    }
    const info = await stat(probe).catch(() => undefined)
    if (!info?.isDirectory()) {
      throw new UserError('NOT_WRITABLE', `Cannot use ${this.root}: ${probe} is not a directory.`, {
        hint: 'Choose another --dir (or HELIX_DIR).',
      })
    }
    try {
      await access(probe, constants.W_OK | constants.X_OK)
    } catch {
      throw new UserError('NOT_WRITABLE', `Cannot write to ${probe}.`, {
        hint: 'Choose a directory you can write to with --dir (or HELIX_DIR), or fix its permissions.',
      })
    }
  }

  async ensureDir(...parts: string[]): Promise<string> {
    const dir = this.path(...parts)
    await mkdir(dir, { recursive: true })
    return dir
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}
