import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import { createModelService, type HelixModelService } from '../../../src/core/infer/model-service.js'
import { tempDir } from '../../helpers/cli.js'
import { addToRepository, corruptModel, scaleModel } from '../../helpers/onnx-models.js'
import { f32, recordingLogger, rejection } from './service-helpers.js'

const x = f32('x', [1, 4], [1, 1, 1, 1])
/** scaleModel(k) multiplies by k, so the answer tells which version computed it. */
const factorOf = (outputs: { data: unknown }[]) => (outputs[0].data as Float32Array)[0]

describe('versions, traffic splits, shadowing, cache and reload', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let service: HelixModelService | undefined
  const start = async (options: Partial<Parameters<typeof createModelService>[0]> = {}) => {
    service = await createModelService({
      repositoryDir: dir,
      defaultDevice: 'cpu',
      drainTimeoutMs: 5000,
      ...options,
    })
    return service
  }
  beforeEach(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterEach(async () => {
    await service?.close()
    service = undefined
    await cleanup()
  })
  afterAll(async () => {})

  it('loads versions per policy: latest 1 by default, latest N, all, specific', async () => {
    for (const v of [1, 2, 3]) {
      await addToRepository(dir, 'd', scaleModel(v), { version: v })
      await addToRepository(dir, 'l2', scaleModel(v), {
        version: v,
        config: { version_policy: { latest: 2 } },
      })
      await addToRepository(dir, 'all', scaleModel(v), {
        version: v,
        config: { version_policy: { all: true } },
      })
      await addToRepository(dir, 'sp', scaleModel(v), {
        version: v,
        config: { version_policy: { specific: [1, 3, 9] } },
      })
    }
    const s = await start()
    const versions = (name: string) =>
      s
        .index()
        .filter((r) => r.name === name)
        .map((r) => `${r.version}:${r.state}`)
    expect(versions('d')).toEqual(['3:READY'])
    expect(versions('l2')).toEqual(['2:READY', '3:READY'])
    expect(versions('all')).toEqual(['1:READY', '2:READY', '3:READY'])
    expect(versions('sp')).toEqual(['1:READY', '3:READY', '9:UNAVAILABLE'])
    expect(s.index().find((r) => r.name === 'sp' && r.version === '9')?.reason).toBe(
      'version 9 is named in config.yaml but models/sp/9/ does not exist',
    )
    expect(s.metadata('all').versions).toEqual(['1', '2', '3'])
    for (const v of ['1', '2', '3']) {
      const r = await s.infer({ model: 'all', version: v, inputs: [x] })
      expect(r.modelVersion).toBe(v)
      expect(factorOf(r.outputs)).toBe(Number(v))
    }
    const latest = await s.infer({ model: 'all', inputs: [x] })
    expect([latest.modelVersion, factorOf(latest.outputs)]).toEqual(['3', 3])
    expect((await rejection(s.infer({ model: 'd', version: '1', inputs: [x] }))).code).toBe(
      'VERSION_NOT_FOUND',
    )
  })

  it('splits unversioned traffic by weight, sticky per routing key or header', async () => {
    const config = {
      traffic: [
        { version: 1, weight: 90 },
        { version: 2, weight: 10 },
      ],
    }
    await addToRepository(dir, 'ab', scaleModel(1), { version: 1, config })
    await addToRepository(dir, 'ab', scaleModel(2), { version: 2, config })
    await addToRepository(dir, 'hdr', scaleModel(1), {
      version: 1,
      config: {
        ...config,
        traffic: [
          { version: 1, weight: 50 },
          { version: 2, weight: 50 },
        ],
        sticky_header: 'X-User',
      },
    })
    await addToRepository(dir, 'hdr', scaleModel(2), { version: 2 })
    const s = await start()
    const n = 2000
    const picks = []
    // In waves of 200: all 2000 at once would (rightly) overflow the 1024-request queue.
    for (let wave = 0; wave < n / 200; wave++)
      picks.push(
        ...(await Promise.all(Array.from({ length: 200 }, () => s.infer({ model: 'ab', inputs: [x] })))),
      )
    const share2 = picks.filter((r) => r.modelVersion === '2').length / n
    // 10 % ± 3 points: p≈1e-5 to fail by chance with n=2000 (σ≈0.67 points).
    expect(share2).toBeGreaterThan(0.07)
    expect(share2).toBeLessThan(0.13)
    for (const r of picks) expect(factorOf(r.outputs)).toBe(Number(r.modelVersion))
    // Sticky: one key always gets one version; many keys still split about 90/10.
    for (const key of ['alice', 'bob', 'carol']) {
      const got = new Set(
        (
          await Promise.all(
            Array.from({ length: 20 }, () => s.infer({ model: 'ab', inputs: [x], routingKey: key })),
          )
        ).map((r) => r.modelVersion),
      )
      expect(got.size).toBe(1)
    }
    const keyed = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => s.infer({ model: 'ab', inputs: [x], routingKey: `key-${i}` })),
    )
    const keyedShare = keyed.filter((r) => r.modelVersion === '2').length / 1000
    expect(keyedShare).toBeGreaterThan(0.06)
    expect(keyedShare).toBeLessThan(0.14)
    // sticky_header wins over the routing key.
    const byHeader = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        s.infer({ model: 'hdr', inputs: [x], routingKey: `k${i}`, headers: { 'x-user': 'same-user' } }),
      ),
    )
    expect(new Set(byHeader.map((r) => r.modelVersion)).size).toBe(1)
    const arrays = await s.infer({ model: 'hdr', inputs: [x], headers: { 'x-user': ['u1', 'u2'] } })
    const u1 = await s.infer({ model: 'hdr', inputs: [x], headers: { 'x-user': 'u1' } })
    expect(arrays.modelVersion).toBe(u1.modelVersion)
    // An explicit version bypasses the split.
    expect(
      (await s.infer({ model: 'ab', version: '2', inputs: [x], routingKey: 'alice' })).modelVersion,
    ).toBe('2')
  })

  it('sends a copy to the shadow version and discards its answer', async () => {
    const config = { shadow: { version: 2 }, version_policy: { specific: [1] } }
    await addToRepository(dir, 'sh', scaleModel(1), { version: 1, config })
    await addToRepository(dir, 'sh', scaleModel(2), { version: 2 })
    const { logger, lines } = recordingLogger()
    const s = await start({ logger })
    const released: string[] = []
    const r = await s.infer({ model: 'sh', inputs: [x], releaseInputs: () => released.push('shadowed') })
    expect([r.modelVersion, factorOf(r.outputs)]).toEqual(['1', 1])
    // The shadow's copy still reads the inputs: they are released only once it is done.
    await expect.poll(() => lines.filter((l) => l.msg === 'shadow answered').length).toBe(1)
    await expect.poll(() => released).toEqual(['shadowed'])
    expect(lines.find((l) => l.msg === 'shadow answered')?.obj.version).toBe('2')
    // Explicitly versioned calls are not shadowed, and release their inputs with the answer.
    await s.infer({ model: 'sh', version: '1', inputs: [x], releaseInputs: () => released.push('plain') })
    expect(released).toEqual(['shadowed', 'plain'])
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(lines.filter((l) => l.msg === 'shadow answered')).toHaveLength(1)
    // A shadow that refuses the input never affects the caller.
    const odd = await s.infer({ model: 'sh', inputs: [f32('x', [2, 4], new Array(8).fill(1))] })
    expect(odd.modelVersion).toBe('1')
  })

  it('answers repeated inputs from the response cache when enabled', async () => {
    await addToRepository(dir, 'c', scaleModel(3), { config: { cache: { enabled: true, max_entries: 2 } } })
    await addToRepository(dir, 'nc', scaleModel(3))
    const s = await start()
    const first = await s.infer({ model: 'c', inputs: [x], id: 'a' })
    const second = await s.infer({ model: 'c', inputs: [f32('x', [1, 4], [1, 1, 1, 1])], id: 'b' })
    expect(first.cached).toBeUndefined()
    expect(second).toMatchObject({
      cached: true,
      id: 'b',
      modelVersion: '1',
      timing: { queueMs: 0, computeMs: 0, batchSize: 0 },
    })
    expect(second.outputs).toEqual(first.outputs)
    const other = await s.infer({ model: 'c', inputs: [f32('x', [1, 4], [2, 2, 2, 2])] })
    expect(other.cached).toBeUndefined()
    expect(factorOf(other.outputs)).toBe(6)
    await s.infer({ model: 'c', inputs: [f32('x', [1, 4], [3, 3, 3, 3])] })
    // max_entries 2: the first entry was evicted.
    expect((await s.infer({ model: 'c', inputs: [x] })).cached).toBeUndefined()
    expect((await s.infer({ model: 'nc', inputs: [x] })).cached).toBeUndefined()
    expect((await s.infer({ model: 'nc', inputs: [x] })).cached).toBeUndefined()
  })

  it('reloads under continuous load without a single failed request', async () => {
    await addToRepository(dir, 'live', scaleModel(1), {
      version: 1,
      config: { max_batch_size: 8, max_queue_delay_ms: 1 },
    })
    const s = await start()
    let stop = false
    const seen: string[] = []
    const failures: unknown[] = []
    const client = async () => {
      while (!stop) {
        try {
          const r = await s.infer({ model: 'live', inputs: [x] })
          // Version 2 is replaced in place by a model that multiplies by 5.
          expect(r.modelVersion === '1' ? [1] : [2, 5]).toContain(factorOf(r.outputs))
          seen.push(r.modelVersion)
        } catch (err) {
          failures.push(err)
        }
      }
    }
    const clients = Array.from({ length: 16 }, client)
    await new Promise((r) => setTimeout(r, 100))
    await addToRepository(dir, 'live', scaleModel(2), { version: 2 })
    await s.load('live')
    const afterFirst = seen.length
    await new Promise((r) => setTimeout(r, 100))
    // Same version number, new file: re-opened and swapped too.
    await addToRepository(dir, 'live', scaleModel(5), { version: 2 })
    await s.load('live')
    await new Promise((r) => setTimeout(r, 100))
    stop = true
    await Promise.all(clients)
    expect(failures).toEqual([])
    expect(seen.length).toBeGreaterThan(afterFirst)
    expect(seen).toContain('1')
    expect(seen.at(-1)).toBe('2')
    expect(
      s
        .index()
        .filter((r) => r.name === 'live')
        .map((r) => `${r.version}:${r.state}`),
    ).toEqual(['2:READY'])
    expect(factorOf((await s.infer({ model: 'live', inputs: [x] })).outputs)).toBe(5)
  })

  it('keeps the old version serving when the new one is corrupt, and reports why', async () => {
    await addToRepository(dir, 'm', scaleModel(1), { version: 1 })
    const s = await start()
    await addToRepository(dir, 'm', corruptModel(), { version: 2 })
    const error = await rejection(s.load('m'))
    expect(error.code).toBe('MODEL_LOAD_FAILED')
    expect(error.message).toMatch(
      /^Model 'm' failed to load: version 2: failed to load model.onnx: .*Protobuf parsing failed/,
    )
    const r = await s.infer({ model: 'm', inputs: [x] })
    expect([r.modelVersion, factorOf(r.outputs)]).toEqual(['1', 1])
    expect(s.index().map((row) => `${row.version}:${row.state}`)).toEqual(['1:READY', '2:UNAVAILABLE'])
    // A broken config.yaml is refused the same way.
    await writeFile(join(dir, 'm', 'config.yaml'), 'instances: many\n')
    expect((await rejection(s.load('m'))).message).toBe(
      "Model 'm' failed to load: models/m/config.yaml: instances: Expected integer",
    )
    expect((await s.infer({ model: 'm', inputs: [x] })).modelVersion).toBe('1')
    // Fixing the files makes the next load succeed.
    await rm(join(dir, 'm', 'config.yaml'))
    await addToRepository(dir, 'm', scaleModel(7), { version: 3 })
    await s.load('m')
    expect(factorOf((await s.infer({ model: 'm', inputs: [x] })).outputs)).toBe(7)
    expect(s.index().map((row) => `${row.version}:${row.state}`)).toEqual(['3:READY'])
  })

  it('unloads after in-flight work finishes, reloads on request, and forgets deleted models', async () => {
    await addToRepository(dir, 'u', scaleModel(4), { config: { max_batch_size: 8, max_queue_delay_ms: 100 } })
    const s = await start()
    const inFlight = s.infer({ model: 'u', inputs: [x] })
    await s.unload('u')
    expect(factorOf((await inFlight).outputs)).toBe(4)
    expect(s.index()).toEqual([{ name: 'u', version: '1', state: 'UNAVAILABLE', reason: 'unloaded' }])
    const error = await rejection(s.infer({ model: 'u', inputs: [x] }))
    expect(error.code).toBe('MODEL_NOT_READY')
    expect(s.modelReady('u')).toBe(false)
    await s.load('u')
    expect(s.modelReady('u')).toBe(true)
    await rm(join(dir, 'u'), { recursive: true })
    expect((await rejection(s.load('u'))).code).toBe('MODEL_NOT_FOUND')
    expect(s.modelReady('u')).toBe(false)
    expect((await rejection(s.unload('ghost'))).code).toBe('MODEL_NOT_FOUND')
  })

  it('refuses a version whose configured warmup fails, and runs configured warmups', async () => {
    await addToRepository(dir, 'w', scaleModel(1), {
      config: {
        warmup: [
          { inputs: { x: { shape: [2, 4], data: [1, 2, 3, 4, 5, 6, 7, 8] } } },
          { inputs: { x: { shape: [3, 4] } } },
        ],
      },
    })
    await addToRepository(dir, 'wbad', scaleModel(1), {
      config: { warmup: [{ inputs: { x: { shape: [1, 4], data: [1] } } }] },
    })
    await addToRepository(dir, 'wname', scaleModel(1), {
      config: { warmup: [{ inputs: { nope: { shape: [1] } } }] },
    })
    await addToRepository(dir, 'wmiss', scaleModel(1), { config: { warmup: [{ inputs: {} }] } })
    const s = await start()
    const row = (name: string) => s.index().find((r) => r.name === name)
    expect(row('w')?.state).toBe('READY')
    expect(row('wbad')).toMatchObject({
      state: 'UNAVAILABLE',
      reason: "warmup failed: warmup input 'x' has 1 values for shape [1,4] (4 needed)",
    })
    expect(row('wname')?.reason).toBe(
      "warmup failed: warmup names input 'nope', which the model does not have",
    )
    expect(row('wmiss')?.reason).toBe("warmup failed: warmup is missing input 'x'")
  })
})
