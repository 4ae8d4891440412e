import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { addModel } from '../../../src/core/infer/repository-admin.js'
import { tempDir } from '../../helpers/cli.js'
import { buildTfjsModels, type TfjsModels } from '../../helpers/tfjs-models.js'
import { rejection } from './service-helpers.js'

const SIGNATURE = {
  inputs: [
    { name: 'a', datatype: 'FP32', shape: [-1, 4] },
    { name: 'b', datatype: 'FP32', shape: [-1, 4] },
  ],
  outputs: [
    { name: 'y', datatype: 'FP32', shape: [-1, 3] },
    { name: 'z', datatype: 'FP32', shape: [-1, 2] },
  ],
}

describe('helix models add for TensorFlow.js (model.json + weight shards)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let models: TfjsModels
  const repo = () => join(dir, 'models')
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    models = await buildTfjsModels(join(dir, 'built'))
  }, 60_000)
  afterAll(() => cleanup())

  it('adds a folder holding model.json: tfjs loads it and runs the warmup, then model.json and its shards are copied', async () => {
    const added = await addModel(repo(), 'graph', join(models.files.graph, '..'))
    expect(added).toEqual({
      name: 'graph',
      version: '1',
      path: join(repo(), 'graph', '1', 'model.json'),
      ...SIGNATURE,
    })
    expect((await readdir(join(repo(), 'graph', '1'))).sort()).toEqual([
      'group1-shard1of2.bin',
      'group1-shard2of2.bin',
      'model.json',
    ])
    for (const file of ['model.json', 'group1-shard1of2.bin', 'group1-shard2of2.bin']) {
      expect(await readFile(join(repo(), 'graph', '1', file))).toEqual(
        await readFile(join(models.files.graph, '..', file)),
      )
    }
    // No temp directory is left beside the version.
    expect(await readdir(join(repo(), 'graph'))).toEqual(['1'])
  })

  it('adds a model.json by path under any name (it becomes model.json), leaving other files behind', async () => {
    const source = join(dir, 'renamed')
    await mkdir(source)
    await copyFile(models.files.layers, join(source, 'my-model.json'))
    await copyFile(
      join(models.files.layers, '..', 'group1-shard1of1.bin'),
      join(source, 'group1-shard1of1.bin'),
    )
    await writeFile(join(source, 'notes.txt'), 'not part of the model')
    const added = await addModel(repo(), 'layers', join(source, 'my-model.json'), { version: 3 })
    expect(added).toMatchObject({
      version: '3',
      path: join(repo(), 'layers', '3', 'model.json'),
      ...SIGNATURE,
    })
    expect((await readdir(join(repo(), 'layers', '3'))).sort()).toEqual([
      'group1-shard1of1.bin',
      'model.json',
    ])
  })

  it('refuses a corrupt model.json, a missing shard and a folder without a model, leaving nothing behind', async () => {
    const corrupt = join(dir, 'corrupt')
    await mkdir(corrupt)
    await writeFile(join(corrupt, 'model.json'), '{"format": "graph-model"')
    const bad = await rejection(addModel(repo(), 'corrupt', corrupt))
    expect(bad.code).toBe('MODEL_INVALID')
    expect(bad.message).toMatch(
      new RegExp(
        `^TensorFlow\\.js cannot serve ${join(corrupt, 'model.json')}: ${join(corrupt, 'model.json')} is not valid JSON`,
      ),
    )

    const missing = join(dir, 'missing')
    await mkdir(missing)
    await copyFile(models.files.graph, join(missing, 'model.json'))
    await copyFile(
      join(models.files.graph, '..', 'group1-shard1of2.bin'),
      join(missing, 'group1-shard1of2.bin'),
    )
    const noShard = await rejection(addModel(repo(), 'missing', join(missing, 'model.json')))
    expect(noShard.message).toBe(
      `TensorFlow.js cannot serve ${join(missing, 'model.json')}: the weight file group1-shard2of2.bin that ${join(missing, 'model.json')} names is missing`,
    )

    const empty = join(dir, 'empty')
    await mkdir(empty)
    const neither = await rejection(addModel(repo(), 'empty', empty))
    expect(neither.message).toBe(
      `${empty} is neither a Hugging Face–format ONNX folder nor a TensorFlow.js model folder.`,
    )
    expect((await readdir(repo())).sort()).toEqual(['graph', 'layers'])
  })
})
