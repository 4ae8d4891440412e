import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runHelix, runHelixJson, tempDir } from '../../helpers/cli.js'
import { buildTfjsModels, type TfjsModels } from '../../helpers/tfjs-models.js'

describe('helix models add/list for TensorFlow.js models (e2e, built binary)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let models: TfjsModels
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    models = await buildTfjsModels(join(dir, 'built'))
  }, 60_000)
  afterAll(() => cleanup())
  const home = () => join(dir, 'home')

  it('adds a model.json folder and lists it READY on the CPU; a broken one exits 2 with MODEL_INVALID', async () => {
    const added = await runHelixJson<{ name: string; version: string; path: string }>([
      'models',
      'add',
      'mlp',
      join(models.files.layers, '..'),
      '--dir',
      home(),
    ])
    expect(added).toMatchObject({
      name: 'mlp',
      version: '1',
      path: join(home(), 'models', 'mlp', '1', 'model.json'),
    })
    const rows = await runHelixJson<Record<string, unknown>[]>(['models', 'list', '--dir', home()], {
      env: { HELIX_DEVICE: 'cpu' },
    })
    expect(rows).toEqual([
      { name: 'mlp', version: '1', state: 'READY', executionProvider: 'cpu', device: 'cpu' },
    ])
    await writeFile(join(dir, 'broken.json'), '{"format": "layers-model"')
    const broken = await runHelix([
      'models',
      'add',
      'broken',
      join(dir, 'broken.json'),
      '--dir',
      home(),
      '--json',
    ])
    expect(broken.exitCode).toBe(2)
    expect(JSON.parse(broken.stderr).error).toMatchObject({
      code: 'MODEL_INVALID',
      message: expect.stringContaining('is not valid JSON'),
    })
  })
})
