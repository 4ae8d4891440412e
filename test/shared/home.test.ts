import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { exists, HelixHome } from '../../src/shared/home.js'
import { tempDir } from '../helpers/cli.js'

describe('HelixHome', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeEach(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterEach(() => cleanup())

  it('lays out the helix directory as the README lists', () => {
    const home = new HelixHome(dir)
    expect(home.configFile).toBe(join(dir, 'helix.yaml'))
    expect(home.certsDir).toBe(join(dir, 'certs'))
    expect(home.keysDir).toBe(join(dir, 'keys'))
    expect(home.nginxDir).toBe(join(dir, 'nginx'))
    expect(home.dockerDir).toBe(join(dir, 'docker'))
    expect(home.helmDir).toBe(join(dir, 'helm', 'helix'))
    expect(home.monitoringDir).toBe(join(dir, 'monitoring'))
    expect(home.modelsDir).toBe(join(dir, 'models'))
    expect(home.dataDir).toBe(join(dir, 'data'))
  })

  it('requires init before use', async () => {
    const home = new HelixHome(dir)
    expect(await home.isInitialised()).toBe(false)
    await expect(home.requireInitialised()).rejects.toMatchObject({ code: 'NOT_INITIALISED', exitCode: 2 })
    await writeFile(home.configFile, '{}')
    await expect(home.requireInitialised()).resolves.toBeUndefined()
  })

  it('accepts a new directory below a writable one and refuses one below a file', async () => {
    await expect(new HelixHome(join(dir, 'a', 'b', 'c')).ensureWritable()).resolves.toBeUndefined()
    await writeFile(join(dir, 'file'), 'x')
    await expect(new HelixHome(join(dir, 'file', 'sub')).ensureWritable()).rejects.toMatchObject({
      code: 'NOT_WRITABLE',
    })
  })

  it('creates sub-directories on demand', async () => {
    const home = new HelixHome(dir)
    const made = await home.ensureDir('data', 'postgres')
    expect(await exists(made)).toBe(true)
    await mkdir(join(dir, 'x'))
    expect(await exists(join(dir, 'x'))).toBe(true)
    expect(await exists(join(dir, 'y'))).toBe(false)
  })
})
