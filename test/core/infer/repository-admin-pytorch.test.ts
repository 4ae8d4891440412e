import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { addModel } from '../../../src/core/infer/repository-admin.js'
import { tempDir } from '../../helpers/cli.js'
import { hasPythonTorch } from '../../helpers/tools.js'
import { buildTorchModels, MIX_IO, type TorchModels } from '../../helpers/torch-models.js'
import { rejection } from './service-helpers.js'

const MIX = {
  max_batch_size: 8,
  ...MIX_IO,
}

describe.skipIf(!hasPythonTorch())('helix models add for TorchScript (model.pt)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let models: TorchModels
  const repo = () => join(dir, 'models')
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    models = await buildTorchModels(dir)
    await writeFile(join(dir, 'mix.yaml'), stringify(MIX))
    await writeFile(join(dir, 'wrong.yaml'), stringify({ ...MIX, outputs: [MIX.outputs[0]] }))
  }, 60_000)
  afterAll(() => cleanup())

  it('loads the file in the PyTorch worker, runs the warmup and writes model.pt and config.yaml', async () => {
    const added = await addModel(repo(), 'mix', models.files.mix, { config: join(dir, 'mix.yaml') })
    expect(added).toEqual({
      name: 'mix',
      version: '1',
      path: join(repo(), 'mix', '1', 'model.pt'),
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [-1, 4] },
        { name: 'b', datatype: 'FP32', shape: [-1, 4] },
      ],
      outputs: [
        { name: 'y', datatype: 'FP32', shape: [-1, 3] },
        { name: 'z', datatype: 'FP32', shape: [-1, 4] },
      ],
    })
    expect(await readFile(join(repo(), 'mix', 'config.yaml'), 'utf8')).toBe(stringify(MIX))
    // The next version validates against the model's own config.yaml.
    expect((await addModel(repo(), 'mix', models.files.mix)).version).toBe('2')
  }, 30_000)

  it('refuses a .pt without a config naming its inputs, and one whose warmup disagrees, leaving nothing', async () => {
    const bare = await rejection(addModel(repo(), 'bare', models.files.mix))
    expect({ code: bare.code, message: bare.message }).toEqual({
      code: 'MODEL_INVALID',
      message: `PyTorch cannot serve ${models.files.mix}: config.yaml must declare inputs and outputs (name, datatype, dims): a TorchScript model.pt carries no tensor names`,
    })
    const wrong = await rejection(
      addModel(repo(), 'wrong', models.files.mix, { config: join(dir, 'wrong.yaml') }),
    )
    expect(wrong.message).toBe(
      `PyTorch cannot serve ${models.files.mix}: the model returned 2 tensors but config.yaml declares 1 outputs (y)`,
    )
    const noTorch = await rejection(
      addModel(repo(), 'nopython', models.files.mix, {
        config: join(dir, 'mix.yaml'),
        pytorch: { python: join(dir, 'no-python') },
      }),
    )
    expect(noTorch.message).toContain('does not exist (backends.pytorch.python in helix.yaml)')
    expect((await readdir(repo())).sort()).toEqual(['mix'])
  }, 30_000)
})
