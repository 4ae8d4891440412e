import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { discoverGpus } from '../../../src/core/gpu/nvidia-smi.js'
import { createModelService, type HelixModelService } from '../../../src/core/infer/model-service.js'
import { tempDir } from '../../helpers/cli.js'
import {
  addModel,
  addToRepository,
  corruptModel,
  fixedShapeModel,
  multiIoModel,
  unsupportedOpModel,
} from '../../helpers/onnx-models.js'
import { type FakeNvidiaSmi, fakeNvidiaSmi } from '../gpu/fake-nvidia-smi.js'
import { f32, recordingLogger, rejection } from './service-helpers.js'

describe('model repository: loading, states and metadata', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let service: HelixModelService
  let fake: FakeNvidiaSmi
  const { logger, lines } = recordingLogger()

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    fake = await fakeNvidiaSmi('h100-x2.csv')
    await addToRepository(dir, 'add', addModel())
    await addToRepository(dir, 'multi', multiIoModel(), { config: { device: 'cpu' } })
    await addToRepository(dir, 'corrupt', corruptModel())
    await addToRepository(dir, 'badop', unsupportedOpModel())
    await addToRepository(dir, 'typo', addModel(), { config: 'max_batch_sise: 8\n' })
    await addToRepository(dir, 'badyaml', addModel(), { config: 'max_batch_size: [\n' })
    await addToRepository(dir, 'nobatch', fixedShapeModel(), { config: { max_batch_size: 8 } })
    await addToRepository(dir, 'gpuonly', addModel(), { config: { device: 'cuda', gpu: 1 } })
    await addToRepository(dir, 'auto', addModel(), { config: { device: 'auto', memory_budget_mb: 2048 } })
    await mkdir(join(dir, 'empty', '1'), { recursive: true })
    await mkdir(join(dir, 'noversions'), { recursive: true })
    await writeFile(join(dir, 'not-a-model.txt'), 'ignored')
    await mkdir(join(dir, '.hidden', '1'), { recursive: true })
    const env = fake.env
    service = await createModelService({
      repositoryDir: dir,
      defaultDevice: 'cpu',
      logger,
      gpuDiscovery: () => discoverGpus({ env }),
    })
  })
  afterAll(async () => {
    await service.close()
    await fake.cleanup()
    await cleanup()
  })

  it('marks each bad model UNAVAILABLE with its reason while the others serve', () => {
    const rows = service.index()
    const row = (name: string) => rows.find((r) => r.name === name)
    expect(rows.map((r) => r.name)).toEqual([
      'add',
      'auto',
      'badop',
      'badyaml',
      'corrupt',
      'empty',
      'gpuonly',
      'multi',
      'nobatch',
      'noversions',
      'typo',
    ])
    expect(row('add')).toEqual({
      name: 'add',
      version: '1',
      state: 'READY',
      executionProvider: 'cpu',
      device: 'cpu',
      queueDepth: 0,
      queueCapacity: expect.any(Number),
    })
    expect(row('corrupt')).toMatchObject({
      state: 'UNAVAILABLE',
      reason: expect.stringMatching(/^failed to load model.onnx: .*Protobuf parsing failed/),
    })
    expect(row('badop')).toMatchObject({
      state: 'UNAVAILABLE',
      reason: expect.stringMatching(/NoSuchOperator/),
    })
    expect(row('typo')).toMatchObject({
      version: '1',
      state: 'UNAVAILABLE',
      reason: "models/typo/config.yaml: unknown setting 'max_batch_sise'",
    })
    expect(row('badyaml')).toMatchObject({
      state: 'UNAVAILABLE',
      reason: expect.stringMatching(/^models\/badyaml\/config.yaml is not valid YAML/),
    })
    expect(row('nobatch')).toMatchObject({
      state: 'UNAVAILABLE',
      reason:
        "max_batch_size 8 needs a dynamic first dimension on every input and output, but 'x' has shape [2,4]",
    })
    expect(row('empty')).toMatchObject({
      version: '1',
      state: 'UNAVAILABLE',
      reason: 'models/empty/1/model.onnx is missing',
    })
    expect(row('noversions')).toEqual({
      name: 'noversions',
      version: '',
      state: 'UNAVAILABLE',
      reason: 'no version directories in models/noversions/ (expected models/noversions/1/model.onnx)',
    })
    expect(row('gpuonly')).toMatchObject({
      state: 'UNAVAILABLE',
      reason: expect.stringMatching(/^CUDA is unavailable .*npm run install:cuda/),
    })
    expect(row('auto')).toMatchObject({
      state: 'READY',
      executionProvider: 'cpu',
      device: 'cpu',
      fallbackReason: expect.stringMatching(/^CUDA is unavailable/),
    })
    expect(service.index({ readyOnly: true }).map((r) => r.name)).toEqual(['add', 'auto', 'multi'])
    expect(service.isReady()).toBe(true)
    expect(lines.some((l) => l.level === 'warn' && l.msg === 'device auto: running auto:1 on the CPU')).toBe(
      true,
    )
    expect(lines.some((l) => l.level === 'error' && l.obj.model === 'corrupt')).toBe(true)
  })

  it('reports metadata with the provider in use and the batch limit', () => {
    expect(service.metadata('add')).toEqual({
      name: 'add',
      versions: ['1'],
      platform: 'onnxruntime_onnx',
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [-1, 4] },
        { name: 'b', datatype: 'FP32', shape: [-1, 4] },
      ],
      outputs: [{ name: 'sum', datatype: 'FP32', shape: [-1, 4] }],
      executionProvider: 'cpu',
      device: 'cpu',
      maxBatchSize: 32,
    })
    expect(service.metadata('multi', '1').maxBatchSize).toBe(0)
  })

  it('answers readiness per model and version, 404-style for unknown names', async () => {
    expect(service.modelReady('add')).toBe(true)
    expect(service.modelReady('add', '1')).toBe(true)
    expect(service.modelReady('corrupt')).toBe(false)
    expect(service.modelReady('corrupt', '1')).toBe(false)
    expect(() => service.modelReady('ghost')).toThrow(expect.objectContaining({ code: 'MODEL_NOT_FOUND' }))
    expect(() => service.modelReady('add', '7')).toThrow(
      expect.objectContaining({
        code: 'VERSION_NOT_FOUND',
        message: "Model 'add' has no version '7' (loaded: 1).",
      }),
    )
    expect(() => service.metadata('ghost')).toThrow(expect.objectContaining({ code: 'MODEL_NOT_FOUND' }))
    expect(() => service.metadata('corrupt')).toThrow(expect.objectContaining({ code: 'MODEL_NOT_READY' }))
    expect(() => service.metadata('corrupt', '1')).toThrow(
      expect.objectContaining({ code: 'MODEL_NOT_READY' }),
    )
    const error = await rejection(service.infer({ model: 'corrupt', inputs: [] }))
    expect(error.code).toBe('MODEL_NOT_READY')
    expect(error.message).toMatch(/^Model 'corrupt' is not ready: version 1: failed to load model.onnx/)
    expect((await rejection(service.infer({ model: 'ghost', inputs: [] }))).code).toBe('MODEL_NOT_FOUND')
    expect((await rejection(service.infer({ model: 'noversions', inputs: [] }))).message).toMatch(
      /no version directories/,
    )
  })

  it('keeps serving the good models after the bad ones failed', async () => {
    const result = await service.infer({
      model: 'add',
      id: 'r1',
      inputs: [f32('a', [1, 4], [1, 2, 3, 4]), f32('b', [1, 4], [10, 20, 30, 40])],
    })
    expect(result).toMatchObject({
      modelName: 'add',
      modelVersion: '1',
      id: 'r1',
      outputs: [f32('sum', [1, 4], [11, 22, 33, 44])],
    })
    expect(result.timing.batchSize).toBe(1)
    expect(result.timing.queueMs).toBeGreaterThanOrEqual(0)
    expect(result.timing.computeMs).toBeGreaterThan(0)
  })

  it('loads a model added later, and refuses names that are not in the repository', async () => {
    await addToRepository(dir, 'late', addModel())
    expect(() => service.modelReady('late')).toThrow(expect.objectContaining({ code: 'MODEL_NOT_FOUND' }))
    await service.load('late')
    expect(service.modelReady('late')).toBe(true)
    expect((await rejection(service.load('ghost'))).code).toBe('MODEL_NOT_FOUND')
    expect((await rejection(service.load('../etc'))).code).toBe('MODEL_NOT_FOUND')
  })
})

describe('model service startup options', () => {
  it('loads only the named startup models, and none on request, listing the others as not loaded', async () => {
    const { dir, cleanup } = await tempDir()
    await addToRepository(dir, 'one', addModel())
    await addToRepository(dir, 'two', addModel())
    const some = await createModelService({
      repositoryDir: dir,
      defaultDevice: 'cpu',
      startupModels: ['two'],
    })
    expect(some.index().map((r) => [r.name, r.state])).toEqual([
      ['one', 'UNAVAILABLE'],
      ['two', 'READY'],
    ])
    await some.close()
    expect(some.isReady()).toBe(false)
    const none = await createModelService({ repositoryDir: dir, defaultDevice: 'cpu', startupModels: 'none' })
    const notLoaded =
      'not loaded (models.load: none); load it with POST /v2/repository/models/{name}/load or `helix models load`'
    expect(none.index()).toEqual([
      { name: 'one', version: '', state: 'UNAVAILABLE', reason: notLoaded },
      { name: 'two', version: '', state: 'UNAVAILABLE', reason: notLoaded },
    ])
    expect(none.isReady()).toBe(true)
    // Not loaded is not missing: 503 with the reason, not 404.
    expect((await rejection(none.infer({ model: 'one', inputs: [] }))).message).toBe(
      `Model 'one' is not ready: ${notLoaded}.`,
    )
    await none.close()
    expect((await rejection(none.load('one'))).code).toBe('MODEL_NOT_READY')
    const missingRepo = await createModelService({ repositoryDir: join(dir, 'nope'), defaultDevice: 'cpu' })
    expect(missingRepo.index()).toEqual([])
    await missingRepo.close()
    await cleanup()
  })
})
