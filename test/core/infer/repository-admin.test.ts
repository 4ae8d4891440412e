import { mkdir, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OnnxBackend } from '../../../src/core/backends/onnx-backend.js'
import {
  addModel as addToRepo,
  removeModel,
  validateOnnxFile,
} from '../../../src/core/infer/repository-admin.js'
import { tempDir } from '../../helpers/cli.js'
import { addModel, sequenceInputModel, writeOnnx } from '../../helpers/onnx-models.js'
import { rejection } from './service-helpers.js'

describe('repository administration', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let add: string
  let sequence: string
  const repo = () => join(dir, 'models')
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    add = await writeOnnx(join(dir, 'add.onnx'), addModel())
    sequence = await writeOnnx(join(dir, 'seq.onnx'), sequenceInputModel())
  })
  afterAll(() => cleanup())

  it('refuses models whose inputs are not tensors, in the CLI check and at load', async () => {
    const error = await rejection(validateOnnxFile(sequence))
    expect({ code: error.code, message: error.message }).toEqual({
      code: 'MODEL_INVALID',
      message: `${sequence} cannot be served: 'items' is not a tensor (sequences and maps are not supported)`,
    })
    const backend = new OnnxBackend({ modelPath: sequence, device: 'cpu' })
    await expect(backend.load()).rejects.toThrow(
      "unsupported model signature: 'items' is not a tensor (sequences and maps are not supported)",
    )
    await backend.dispose()
  })

  it('refuses version 0 and keeps the repository clean when the final rename fails', async () => {
    expect((await rejection(addToRepo(repo(), 'm', add, { version: 0 }))).code).toBe('INVALID_VERSION')
    await addToRepo(repo(), 'm', add)
    // A stray file where the next version directory would go: the rename fails, the temp goes.
    await writeFile(join(repo(), 'm', '2'), 'not a directory')
    await expect(addToRepo(repo(), 'm', add)).rejects.toThrow()
    expect((await readdir(join(repo(), 'm'))).sort()).toEqual(['1', '2'])
  })

  it('removes a whole model atomically and reports a model without versions', async () => {
    await mkdir(join(repo(), 'bare'), { recursive: true })
    expect(await removeModel(repo(), 'bare')).toEqual({ name: 'bare', versions: [] })
    await mkdir(join(repo(), 'bare2'), { recursive: true })
    expect((await rejection(removeModel(repo(), 'bare2', { version: 1 }))).message).toBe(
      "Model 'bare2' has no version 1 (has none).",
    )
    expect((await rejection(removeModel(repo(), 'bad/name'))).code).toBe('INVALID_MODEL_NAME')
    expect((await readdir(repo())).filter((n) => n.startsWith('.'))).toEqual([])
  })
})
