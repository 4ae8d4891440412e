import { copyFile, mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createModelService } from '../../../src/core/infer/model-service.js'
import { addModel } from '../../../src/core/infer/repository-admin.js'
import { tempDir } from '../../helpers/cli.js'
import { writeChatModel, writeEmbeddingModel } from '../../helpers/text-models.js'
import { rejection } from './service-helpers.js'

describe('helix models add with a Hugging Face–format folder', () => {
  let dir: string
  let cleanup: () => Promise<void>
  const repo = () => join(dir, 'models')
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterAll(() => cleanup())

  it('copies the tokenizer, the configs and onnx/model.onnx (not other ONNX variants) and serves it', async () => {
    const exported = join(dir, 'export-chat')
    await writeChatModel(exported, { seed: 21 })
    // An Optimum export often carries quantized variants beside model.onnx: they are left behind.
    await copyFile(join(exported, 'onnx', 'model.onnx'), join(exported, 'onnx', 'model_quantized.onnx'))
    const added = await addModel(repo(), 'tiny-chat', exported)
    expect(added).toMatchObject({ name: 'tiny-chat', version: '1', task: 'chat' })
    expect(added.path).toBe(join(repo(), 'tiny-chat', '1', 'onnx', 'model.onnx'))
    expect((await readdir(join(repo(), 'tiny-chat', '1'))).sort()).toEqual(
      ['config.json', 'generation_config.json', 'onnx', 'tokenizer.json', 'tokenizer_config.json'].sort(),
    )
    expect(await readdir(join(repo(), 'tiny-chat', '1', 'onnx'))).toEqual(['model.onnx'])
    const embedExport = join(dir, 'export-embed')
    await writeEmbeddingModel(embedExport, { seed: 22 })
    expect(await addModel(repo(), 'tiny-embed', embedExport)).toMatchObject({
      version: '1',
      task: 'embeddings',
    })
    const service = await createModelService({ repositoryDir: repo(), defaultDevice: 'cpu' })
    try {
      const chat = await service.text({ model: 'tiny-chat', task: 'chat' })
      expect(chat.modelVersion).toBe('1')
      const embed = await service.text({ model: 'tiny-embed' })
      expect((await embed.engine.embed({ inputs: ['hello'] })).embeddings[0]?.length).toBe(32)
    } finally {
      await service.close()
    }
  }, 60_000)

  it('refuses a folder that is not a text model, or whose graph cannot be served, and leaves nothing', async () => {
    const empty = join(dir, 'not-a-model')
    await mkdir(empty, { recursive: true })
    await writeFile(join(empty, 'README.md'), 'hello\n')
    expect((await rejection(addModel(repo(), 'nothing', empty))).code).toBe('MODEL_INVALID')
    const broken = join(dir, 'broken')
    await writeChatModel(broken, { seed: 23 })
    await writeFile(join(broken, 'onnx', 'model.onnx'), 'not onnx')
    const error = await rejection(addModel(repo(), 'broken', broken))
    expect(error.code).toBe('MODEL_INVALID')
    expect(error.message).toContain('helix cannot serve the text model')
    const left = await readdir(repo())
    expect(left).not.toContain('nothing')
    expect(left).not.toContain('broken')
    await rm(broken, { recursive: true, force: true })
  }, 60_000)
})
