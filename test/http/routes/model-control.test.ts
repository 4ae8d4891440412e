import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createModelService, type HelixModelService } from '../../../src/core/infer/model-service.js'
import { buildApp } from '../../../src/http/app.js'
import { heldBackends } from '../../core/infer/service-helpers.js'
import { tempDir } from '../../helpers/cli.js'
import { addToRepository, scaleModel } from '../../helpers/onnx-models.js'

const body = { inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] }

describe('model control through the KServe routes (models.load none and lazy)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let service: HelixModelService | undefined
  beforeEach(async () => {
    ;({ dir, cleanup } = await tempDir())
    await addToRepository(dir, 'a', scaleModel(2))
    await addToRepository(dir, 'b', scaleModel(3))
  })
  afterEach(async () => {
    await service?.close()
    service = undefined
    await cleanup()
  })

  /** The app on a service whose model loads wait at the door of load() until `release()`. */
  const heldApp = async (startupModels: 'lazy' | 'none') => {
    const { backends, hold } = heldBackends()
    const release = hold()
    const held = await createModelService({
      repositoryDir: dir,
      defaultDevice: 'cpu',
      startupModels,
      backends,
    })
    service = held
    return { app: await buildApp({ service: held }), release, held }
  }

  it('none: the index lists every model, infer is 503 until POST …/load', async () => {
    service = await createModelService({ repositoryDir: dir, defaultDevice: 'cpu', startupModels: 'none' })
    const app = await buildApp({ service })
    const index = await app.inject({ method: 'POST', url: '/v2/repository/index', payload: {} })
    expect(index.json()).toEqual([
      {
        name: 'a',
        version: '',
        state: 'UNAVAILABLE',
        reason: expect.stringMatching(/^not loaded \(models.load: none\)/),
      },
      { name: 'b', version: '', state: 'UNAVAILABLE', reason: expect.stringMatching(/^not loaded/) },
    ])
    expect((await app.inject({ method: 'GET', url: '/v2/health/ready' })).statusCode).toBe(200)
    const refused = await app.inject({ method: 'POST', url: '/v2/models/a/infer', payload: body })
    expect(refused.statusCode).toBe(503)
    expect(refused.json().error).toMatch(/not loaded \(models.load: none\)/)
    expect((await app.inject({ method: 'POST', url: '/v2/repository/models/a/load' })).statusCode).toBe(200)
    const served = await app.inject({ method: 'POST', url: '/v2/models/a/infer', payload: body })
    expect(served.json().outputs[0].data).toEqual([2, 4, 6, 8])
    await app.close()
  })

  it('lazy: live and ready answer while a model loads for its first request', async () => {
    const { app, release } = await heldApp('lazy')
    const first = app.inject({ method: 'POST', url: '/v2/models/b/infer', payload: body })
    const second = app.inject({ method: 'POST', url: '/v2/models/b/infer', payload: body })
    await expect.poll(() => service?.index().find((r) => r.name === 'b')?.state).toBe('LOADING')
    expect((await app.inject({ method: 'GET', url: '/v2/health/live' })).statusCode).toBe(200)
    expect((await app.inject({ method: 'GET', url: '/v2/health/ready' })).statusCode).toBe(200)
    release()
    for (const res of await Promise.all([first, second])) {
      expect(res.statusCode).toBe(200)
      expect(res.json().outputs[0].data).toEqual([3, 6, 9, 12])
    }
    await app.close()
  })

  it('ready says why not: a startup model loading, then draining while requests are still served', async () => {
    const { app, release, held } = await heldApp('none')
    const loading = held.load('a')
    await expect.poll(() => service?.index().find((r) => r.name === 'a')?.state).toBe('LOADING')
    const whileLoading = await app.inject({ method: 'GET', url: '/v2/health/ready' })
    expect(whileLoading.statusCode).toBe(503)
    expect(whileLoading.json()).toMatchObject({ ready: false, reason: "loading model 'a' (version 1)" })
    release()
    await loading
    const ready = await app.inject({ method: 'GET', url: '/v2/health/ready' })
    expect(ready.statusCode).toBe(200)
    expect(ready.json()).not.toHaveProperty('reason')
    held.beginDrain()
    const draining = await app.inject({ method: 'GET', url: '/v2/health/ready' })
    expect(draining.statusCode).toBe(503)
    expect(draining.json()).toMatchObject({ ready: false, reason: 'draining: the daemon is shutting down' })
    // Draining only turns readiness off: what still arrives is answered.
    const served = await app.inject({ method: 'POST', url: '/v2/models/a/infer', payload: body })
    expect(served.json().outputs[0].data).toEqual([2, 4, 6, 8])
    await app.close()
  })
})
