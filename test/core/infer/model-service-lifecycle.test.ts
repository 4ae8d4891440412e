import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createModelService, type HelixModelService } from '../../../src/core/infer/model-service.js'
import { tempDir } from '../../helpers/cli.js'
import {
  addModel,
  addToRepository,
  corruptModel,
  matmulChainModel,
  runtimeErrorModel,
  scaleModel,
} from '../../helpers/onnx-models.js'
import { f32, heldBackends, recordingLogger, rejection } from './service-helpers.js'

const x = f32('x', [1, 4], [1, 1, 1, 1])

describe('model service lifecycle edges', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let service: HelixModelService | undefined
  beforeEach(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterEach(async () => {
    await service?.close()
    await service?.close()
    service = undefined
    await cleanup()
  })

  it('shows a first load as LOADING and the server as not ready until it finishes', async () => {
    await addToRepository(dir, 'slow', scaleModel(2))
    // The real ONNX backend, held at the door of load() so the LOADING state can be observed.
    const { backends, hold } = heldBackends()
    const release = hold()
    service = await createModelService({
      repositoryDir: dir,
      defaultDevice: 'cpu',
      startupModels: 'none',
      backends,
    })
    const loading = service.load('slow')
    await expect.poll(() => service?.index()).toEqual([{ name: 'slow', version: '1', state: 'LOADING' }])
    expect(service.isReady()).toBe(false)
    expect(service.readiness()).toEqual({ ready: false, reason: "loading model 'slow' (version 1)" })
    expect(() => service?.modelReady('slow', '1')).toThrow(
      expect.objectContaining({
        code: 'MODEL_NOT_READY',
        message: "Model 'slow' version '1' is not ready: it is loading.",
      }),
    )
    expect((await rejection(service.infer({ model: 'slow', inputs: [x] }))).message).toBe(
      "Model 'slow' is not ready: it is loading.",
    )
    release()
    await loading
    expect(service.isReady()).toBe(true)
    expect(service.readiness()).toEqual({ ready: true })
    expect((await service.infer({ model: 'slow', inputs: [x] })).modelVersion).toBe('1')
    service.beginDrain()
    expect(service.readiness()).toEqual({ ready: false, reason: 'draining: the daemon is shutting down' })
    await service.close()
    expect(service.readiness()).toEqual({ ready: false, reason: 'stopped: the models are unloaded' })
  })

  it('shows a failed version as LOADING while it is retried, and forgets a model removed meanwhile', async () => {
    await addToRepository(dir, 'flaky', corruptModel())
    const { backends, hold } = heldBackends()
    service = await createModelService({
      repositoryDir: dir,
      defaultDevice: 'cpu',
      backends,
    })
    expect(service.index()[0]).toMatchObject({ version: '1', state: 'UNAVAILABLE' })
    const release = hold()
    await addToRepository(dir, 'flaky', scaleModel(2))
    const first = service.load('flaky')
    await expect.poll(() => service?.index()).toEqual([{ name: 'flaky', version: '1', state: 'LOADING' }])
    const second = service.load('flaky')
    await rm(join(dir, 'flaky'), { recursive: true })
    release()
    expect((await rejection(first)).code).toBe('MODEL_LOAD_FAILED')
    expect((await rejection(second)).code).toBe('MODEL_NOT_FOUND')
    expect(service.index()).toEqual([
      { name: 'flaky', version: '', state: 'UNAVAILABLE', reason: 'no version is loaded' },
    ])
  })

  it('reports a version that fails at run time as BACKEND_FAILED and keeps serving', async () => {
    await addToRepository(dir, 'fails', runtimeErrorModel())
    const { logger, lines } = recordingLogger()
    service = await createModelService({ repositoryDir: dir, defaultDevice: 'cpu', logger })
    // The default warmup (zeros, batch 1) fails too, which is logged but does not block serving.
    expect(
      lines.some((l) => l.level === 'warn' && /^default warmup of fails:1 failed/.test(l.msg ?? '')),
    ).toBe(true)
    const error = await rejection(service.infer({ model: 'fails', inputs: [x] }))
    expect(error.code).toBe('BACKEND_FAILED')
    expect(error.message).toMatch(/^Model 'fails' version '1' failed to run: /)
    const ok = await service.infer({ model: 'fails', inputs: [f32('x', [3, 4], new Array(12).fill(1))] })
    expect(ok.outputs[0].shape).toEqual([3, 4])
  })

  it('logs shadow failures and refusals without touching the answer', async () => {
    const config = { shadow: { version: 2 }, version_policy: { specific: [1] } }
    await addToRepository(dir, 'sf', scaleModel(1), { version: 1, config })
    await addToRepository(dir, 'sf', runtimeErrorModel(), { version: 2 })
    await addToRepository(dir, 'sr', scaleModel(1), { version: 1, config })
    await addToRepository(dir, 'sr', addModel(), { version: 2 })
    const { logger, lines } = recordingLogger()
    service = await createModelService({ repositoryDir: dir, defaultDevice: 'cpu', logger })
    expect((await service.infer({ model: 'sf', inputs: [x] })).modelVersion).toBe('1')
    expect((await service.infer({ model: 'sr', inputs: [x] })).modelVersion).toBe('1')
    await expect.poll(() => lines.filter((l) => l.msg === 'shadow failed').length).toBe(1)
    expect(lines.filter((l) => l.msg === 'shadow refused the input').map((l) => l.obj.err)).toEqual([
      "Model 'sr' has no input 'x'; its inputs are 'a', 'b'.",
    ])
  })

  it('gives up draining after drainTimeoutMs and refuses what was still queued', async () => {
    await addToRepository(dir, 'heavy', matmulChainModel(512, 24), { config: { max_batch_size: 0 } })
    const { logger, lines } = recordingLogger()
    service = await createModelService({
      repositoryDir: dir,
      defaultDevice: 'cpu',
      logger,
      drainTimeoutMs: 1,
    })
    const input = {
      name: 'x',
      datatype: 'FP32' as const,
      shape: [256, 512],
      data: new Float32Array(256 * 512).fill(1),
    }
    const requests = Array.from(
      { length: 6 },
      () => service?.infer({ model: 'heavy', inputs: [input] }) as Promise<unknown>,
    )
    const outcomes = Promise.allSettled(requests)
    await service.unload('heavy')
    const settled = await outcomes
    const refused = settled
      .filter((s): s is PromiseRejectedResult => s.status === 'rejected')
      .map((s) => s.reason)
    expect(refused.length).toBeGreaterThan(0)
    expect(settled[0].status).toBe('fulfilled')
    for (const error of refused)
      expect(error.message).toBe("Model 'heavy' version '1' is not ready: it was unloaded.")
    expect(lines.some((l) => l.msg === 'version 1 did not drain within 1 ms')).toBe(true)
  })
})
