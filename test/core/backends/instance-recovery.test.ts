import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  MAX_INSTANCE_CRASHES,
  OnnxBackend,
  REOPEN_ATTEMPTS,
} from '../../../src/core/backends/onnx-backend.js'
import { WorkerPool } from '../../../src/core/backends/worker-pool.js'
import type { HostedSession } from '../../../src/core/backends/worker-session.js'
import { TEXT_MODEL_FILE } from '../../../src/core/generate/hf-folder.js'
import { TextBackend } from '../../../src/core/generate/text-backend.js'
import type { TextEngine } from '../../../src/core/generate/types.js'
import { GpuReservations } from '../../../src/core/gpu/placement.js'
import { parseModelConfig } from '../../../src/core/infer/model-config.js'
import { silentLogger } from '../../../src/core/logger.js'
import { tempDir } from '../../helpers/cli.js'
import { scaleModel, slowOnDemandModel, writeOnnx } from '../../helpers/onnx-models.js'
import { writeEmbeddingModel } from '../../helpers/text-models.js'
import { f32, recordingLogger, rejection } from '../infer/service-helpers.js'

const options = { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1 }
const ones = f32('x', [1, 4], [1, 1, 1, 1])
/** Keeps onnxruntime busy for 1–2.5 s in slowOnDemandModel (250000 MatMuls of 64×64), past run_timeout_s. */
const hang = f32('x', [1, 4], [250_000, 1, 1, 1])

describe('a model whose worker thread is lost', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let slow: string
  let scale: string
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    slow = await writeOnnx(join(dir, 'slow.onnx'), slowOnDemandModel())
    scale = await writeOnnx(join(dir, 'scale.onnx'), scaleModel(3))
  })
  afterAll(() => cleanup())

  it('stops a thread between calls: a run in flight finishes, the process lives on', async () => {
    const pool = new WorkerPool({ size: 1 })
    const session = await pool.open(slow, options)
    // Terminating a thread inside onnxruntime-node aborts the process, so terminate() waits for the
    // run to return; the run's answer is still delivered.
    const running = session.run([f32('x', [1, 4], [20_000, 1, 1, 1])])
    await new Promise((resolve) => setTimeout(resolve, 50))
    await session.host.terminate()
    expect((await running)[0].data).toEqual(Float32Array.from([40_000, 2, 2, 2]))
    expect(session.host.alive).toBe(false)
    await pool.close()
  })

  it('gives up a thread whose run outlives run_timeout_s: that request gets a 503, the next is served on a live thread', async () => {
    const { logger, lines } = recordingLogger()
    const pool = new WorkerPool({ size: 2, logger })
    const backend = new OnnxBackend({
      modelPath: slow,
      device: 'cpu',
      pool,
      instances: 1,
      runTimeoutMs: 300,
      label: 'slow:1',
      logger,
    })
    await backend.load()
    expect((await backend.run([ones], ['y']))[0].data).toEqual(Float32Array.from([2, 2, 2, 2]))
    const started = performance.now()
    const error = await rejection(backend.run([hang], ['y']))
    expect(performance.now() - started).toBeLessThan(2000)
    expect(error.code).toBe('MODEL_INSTANCE_CRASHED')
    expect(error.message).toBe(
      "Model 'slow' version '1' lost this request: a run took longer than run_timeout_s (0.3 s), so its onnxruntime worker thread was stopped; its instance is being reopened.",
    )
    // The next request waits for the instance to reopen on a live thread, and is served.
    expect((await backend.run([ones], ['y']))[0].data).toEqual(Float32Array.from([2, 2, 2, 2]))
    expect(lines.map((l) => l.msg)).toEqual(
      expect.arrayContaining([
        'an onnxruntime worker thread exited',
        'reopening an instance on a live worker thread',
        'instance reopened on a live worker thread',
      ]),
    )
    await backend.dispose()
    // The given-up thread ends once its run returns; close() waits for it.
    await pool.close()
  })

  it('reopens an instance whose thread exited while idle before its next run, other models untouched', async () => {
    const pool = new WorkerPool({ size: 2 })
    const a = new OnnxBackend({ modelPath: scale, device: 'cpu', pool, instances: 1, label: 'a:1' })
    const b = new OnnxBackend({ modelPath: scale, device: 'cpu', pool, instances: 1, label: 'b:1' })
    await a.load()
    await b.load()
    const hostOf = (backend: OnnxBackend) =>
      (backend as unknown as { sessions: HostedSession[] }).sessions[0].host
    const lost = hostOf(a)
    expect(hostOf(b)).not.toBe(lost)
    await lost.terminate()
    expect((await a.run([ones]))[0].data).toEqual(Float32Array.from([3, 3, 3, 3]))
    expect(hostOf(a).alive).toBe(true)
    expect((await b.run([ones]))[0].data).toEqual(Float32Array.from([3, 3, 3, 3]))
    await Promise.all([a.dispose(), b.dispose()])
    await pool.close()
  })

  it(`goes unavailable with the reason after ${MAX_INSTANCE_CRASHES} lost threads within a minute`, async () => {
    const pool = new WorkerPool({ size: 2 })
    const reasons: string[] = []
    const backend = new OnnxBackend({
      modelPath: scale,
      device: 'cpu',
      pool,
      instances: 1,
      label: 'crashy:2',
      onUnavailable: (reason) => reasons.push(reason),
    })
    await backend.load()
    const sessionHost = () => (backend as unknown as { sessions: HostedSession[] }).sessions[0].host
    for (let i = 1; i < MAX_INSTANCE_CRASHES; i++) {
      await sessionHost().terminate()
      expect(await backend.run([ones])).toHaveLength(1)
    }
    await sessionHost().terminate()
    const error = await rejection(backend.run([ones]))
    expect(error.code).toBe('MODEL_NOT_READY')
    expect(reasons).toEqual([
      `its onnxruntime worker threads stopped ${MAX_INSTANCE_CRASHES} times within 60 s (last: its onnxruntime worker thread exited (code 0)); load it again once the cause is fixed`,
    ])
    expect(error.message).toContain(reasons[0])
    // Every later request fails the same way, at once; the callback is not called again.
    expect((await rejection(backend.run([ones]))).code).toBe('MODEL_NOT_READY')
    expect(reasons).toHaveLength(1)
    await backend.dispose()
    await pool.close()
  })

  it('blames a hung run on its own model: a neighbour on the same thread reopens each time and stays available', async () => {
    // One thread for both: every hang of `slow` takes `scale`'s session with it.
    const pool = new WorkerPool({ size: 1 })
    const reasons: string[] = []
    const onUnavailable = (reason: string) => reasons.push(reason)
    const slowBackend = new OnnxBackend({
      modelPath: slow,
      device: 'cpu',
      pool,
      instances: 1,
      runTimeoutMs: 150,
      label: 'slow:1',
      onUnavailable,
    })
    const neighbour = new OnnxBackend({
      modelPath: scale,
      device: 'cpu',
      pool,
      instances: 1,
      label: 'n:1',
      onUnavailable,
    })
    await slowBackend.load()
    await neighbour.load()
    for (let i = 0; i < MAX_INSTANCE_CRASHES; i++) {
      expect((await rejection(slowBackend.run([f32('x', [1, 4], [40_000, 1, 1, 1])], ['y']))).code).toBe(
        'MODEL_INSTANCE_CRASHED',
      )
      expect((await neighbour.run([ones]))[0].data).toEqual(Float32Array.from([3, 3, 3, 3]))
    }
    expect((await rejection(slowBackend.run([ones], ['y']))).code).toBe('MODEL_NOT_READY')
    expect(reasons).toHaveLength(1)
    expect(reasons[0]).toMatch(
      /^its onnxruntime worker threads stopped 3 times within 60 s \(last: a run took longer/,
    )
    expect((await neighbour.run([ones]))[0].data).toEqual(Float32Array.from([3, 3, 3, 3]))
    await Promise.all([slowBackend.dispose(), neighbour.dispose()])
    await pool.close()
  })

  it('goes unavailable naming the missing file when its lost instance cannot be reopened', async () => {
    const path = await writeOnnx(join(dir, 'deleted.onnx'), scaleModel(2))
    const pool = new WorkerPool({ size: 2 })
    const reasons: string[] = []
    const backend = new OnnxBackend({
      modelPath: path,
      device: 'cpu',
      pool,
      instances: 1,
      label: 'deleted:1',
      onUnavailable: (reason) => reasons.push(reason),
    })
    await backend.load()
    await rm(path)
    // The loaded session does not need its file.
    expect((await backend.run([ones]))[0].data).toEqual(Float32Array.from([2, 2, 2, 2]))
    await (backend as unknown as { sessions: HostedSession[] }).sessions[0].host.terminate()
    const error = await rejection(backend.run([ones]))
    expect(error.code).toBe('MODEL_NOT_READY')
    expect(reasons).toHaveLength(1)
    expect(reasons[0]).toMatch(
      new RegExp(`could not be reopened after ${REOPEN_ATTEMPTS} tries: .*deleted\\.onnx`),
    )
    await backend.dispose()
    await pool.close()
  })

  it('an embedding model reopens its encoder on a live thread, and goes unavailable as an ONNX model does', async () => {
    const folder = join(dir, 'embed')
    await writeEmbeddingModel(folder, { seed: 5 })
    const pool = new WorkerPool({ size: 2 })
    const reasons: string[] = []
    const backend = new TextBackend({
      modelPath: join(folder, TEXT_MODEL_FILE),
      config: parseModelConfig(''),
      device: 'cpu',
      label: 'embed:1',
      logger: silentLogger,
      discoverGpus: async () => ({ gpus: [] }),
      reservations: new GpuReservations(),
      workerPool: pool,
      onUnavailable: (reason) => reasons.push(reason),
    })
    await backend.load()
    const engine = backend.text as TextEngine
    const first = await engine.embed({ inputs: ['the sea'] })
    const host = () =>
      (backend as unknown as { encoder: { sessions: HostedSession[] } }).encoder.sessions[0].host
    for (let i = 1; i < MAX_INSTANCE_CRASHES; i++) {
      await host().terminate()
      // The lost thread's instance reopens before the next request is computed: the same answer.
      expect((await engine.embed({ inputs: ['the sea'] })).embeddings).toEqual(first.embeddings)
      expect(host().alive).toBe(true)
    }
    await host().terminate()
    expect((await rejection(engine.embed({ inputs: ['the sea'] }))).code).toBe('MODEL_NOT_READY')
    expect(reasons).toEqual([expect.stringMatching(/worker threads stopped 3 times within 60 s/)])
    await backend.dispose()
    await pool.close()
  })
})
