import { rm } from 'node:fs/promises'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MAX_INSTANCE_CRASHES } from '../../../src/core/backends/onnx-backend.js'
import { WorkerPool } from '../../../src/core/backends/worker-pool.js'
import { createModelService, type HelixModelService } from '../../../src/core/infer/model-service.js'
import { tempDir } from '../../helpers/cli.js'
import { addToRepository, scaleModel, slowOnDemandModel } from '../../helpers/onnx-models.js'
import { f32, rejection } from './service-helpers.js'

const ones = f32('x', [1, 4], [1, 1, 1, 1])
/** 200000 MatMuls of 64×64 in slowOnDemandModel: well past a run_timeout_s of 0.15 on every machine measured. */
const hang = f32('x', [1, 4], [200_000, 1, 1, 1])

describe('model service under model faults', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let service: HelixModelService | undefined
  let pool: WorkerPool
  beforeEach(async () => {
    ;({ dir, cleanup } = await tempDir())
    pool = new WorkerPool({ size: 2 })
  })
  afterEach(async () => {
    await service?.close()
    service = undefined
    await pool.close()
    await cleanup()
  })

  it(`marks a version whose threads were lost ${MAX_INSTANCE_CRASHES} times UNAVAILABLE with the reason, counts a crashed load failure, and loads it again on request`, async () => {
    await addToRepository(dir, 'hangs', slowOnDemandModel(), {
      config: { instances: 1, run_timeout_s: 0.15 },
    })
    await addToRepository(dir, 'steady', scaleModel(3), { config: { instances: 1 } })
    service = await createModelService({ repositoryDir: dir, defaultDevice: 'cpu', workerPool: pool })
    const infer = (model: string, x = ones) => (service as HelixModelService).infer({ model, inputs: [x] })
    for (let i = 0; i < MAX_INSTANCE_CRASHES; i++) {
      const lost = await rejection(infer('hangs', hang))
      expect(lost).toMatchObject({ code: 'MODEL_INSTANCE_CRASHED' })
      expect(lost.message).toMatch(
        /^Model 'hangs' version '1' lost this request: a run took longer than run_timeout_s \(0\.15 s\)/,
      )
      if (i < MAX_INSTANCE_CRASHES - 1)
        expect((await infer('hangs')).outputs[0].data).toEqual(Float32Array.from([2, 2, 2, 2]))
      expect((await infer('steady')).outputs[0].data).toEqual(Float32Array.from([3, 3, 3, 3]))
    }
    const reason = expect.stringMatching(
      /^its onnxruntime worker threads stopped 3 times within 60 s \(last: a run took longer than run_timeout_s/,
    )
    await expect
      .poll(() => service?.index().find((r) => r.name === 'hangs'))
      .toEqual({
        name: 'hangs',
        version: '1',
        state: 'UNAVAILABLE',
        reason,
      })
    expect(service.modelReady('hangs')).toBe(false)
    expect(await rejection(infer('hangs'))).toMatchObject({ code: 'MODEL_NOT_READY' })
    expect(service.loadStats().find((s) => s.model === 'hangs')?.failures).toEqual({ crashed: 1 })
    expect((await infer('steady')).outputs[0].data).toEqual(Float32Array.from([3, 3, 3, 3]))

    await service.load('hangs')
    expect(service.modelReady('hangs')).toBe(true)
    expect((await infer('hangs')).outputs[0].data).toEqual(Float32Array.from([2, 2, 2, 2]))
  })

  it('keeps a loaded version serving when its file is deleted; a reload names the file and changes nothing', async () => {
    const path = await addToRepository(dir, 'gone', scaleModel(2), { config: { instances: 1 } })
    service = await createModelService({ repositoryDir: dir, defaultDevice: 'cpu', workerPool: pool })
    await rm(path)
    expect((await service.infer({ model: 'gone', inputs: [ones] })).outputs[0].data).toEqual(
      Float32Array.from([2, 2, 2, 2]),
    )
    const refused = await rejection(service.load('gone'))
    expect(refused).toMatchObject({
      code: 'MODEL_LOAD_FAILED',
      message: `Model 'gone' failed to load: version 1: models/gone/1/model.onnx is missing`,
    })
    expect(service.index()).toEqual([expect.objectContaining({ name: 'gone', version: '1', state: 'READY' })])
    expect((await service.infer({ model: 'gone', inputs: [ones] })).outputs[0].data).toEqual(
      Float32Array.from([2, 2, 2, 2]),
    )
    expect(service.loadStats()[0].failures).toEqual({ missing_file: 1 })
  })
})
