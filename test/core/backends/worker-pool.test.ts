import { readFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { GROW_AFTER_BUSY_RUNS, OnnxBackend } from '../../../src/core/backends/onnx-backend.js'
import { WorkerPool, WorkerStartError } from '../../../src/core/backends/worker-pool.js'
import { SessionHost } from '../../../src/core/backends/worker-session.js'
import { tempDir } from '../../helpers/cli.js'
import { matmulChainModel, scaleModel, writeOnnx } from '../../helpers/onnx-models.js'
import { f32, recordingLogger } from '../infer/service-helpers.js'

const threadsOfProcess = () => Number(/Threads:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1])
const options = { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1 }
const x = f32('x', [1, 4], [1, 2, 3, 4])

describe('the worker pool', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let scale: string[]
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    scale = await Promise.all([1, 2, 3, 4].map((k) => writeOnnx(join(dir, `scale${k}.onnx`), scaleModel(k))))
  })
  afterAll(() => cleanup())

  it('hosts many sessions on a fixed number of threads, each on the least loaded one', async () => {
    const pool = new WorkerPool({ size: 2 })
    const first = await pool.open(scale[0], options)
    const before = threadsOfProcess()
    // 40 sessions of four models: still two threads, 20 sessions each, and no thread per session.
    const sessions = await Promise.all(Array.from({ length: 40 }, (_, i) => pool.open(scale[i % 4], options)))
    expect(pool.threads).toBe(2)
    expect(threadsOfProcess() - before).toBeLessThanOrEqual(1)
    const hosts = new Set([first, ...sessions].map((s) => s.host))
    expect([...hosts].map((h) => h.sessions).sort()).toEqual([20, 21])
    const outputs = await Promise.all(sessions.slice(0, 4).map((s) => s.run([x])))
    expect(outputs.map(([y]) => (y.data as Float32Array)[3])).toEqual([4, 8, 12, 16])
    // A model's second instance goes to the thread its first is not on.
    const sibling = await pool.open(scale[0], options, [first])
    expect(sibling.host).not.toBe(first.host)
    await Promise.all([first, sibling, ...sessions].map((s) => s.release()))
    await first.release()
    expect([...hosts].map((h) => h.sessions)).toEqual([0, 0])
    await expect(first.run([x])).rejects.toThrow(/the session was released/)
    await pool.close()
    await expect(pool.open(scale[0], options)).rejects.toBeInstanceOf(WorkerStartError)
  })

  it('keeps the process alive only while a thread has a call in flight', async () => {
    const pool = new WorkerPool({ size: 1 })
    const ports = () => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort').length
    const before = ports()
    const opening = pool.open(scale[0], options)
    expect(ports()).toBe(before + 1)
    const session = await opening
    // Idle: a one-shot command (helix models list) exits although the pool's thread lives on.
    expect(ports()).toBe(before)
    await session.run([x])
    expect(ports()).toBe(before)
    await pool.close()
  })

  it('shares the threads it has when the system refuses another, and fails clearly with none', async () => {
    const { logger, lines } = recordingLogger()
    let allowed = 1
    const startHost = (onExit: (host: SessionHost) => void) => {
      if (allowed-- <= 0) throw new Error('ERR_WORKER_INIT_FAILED: Resource temporarily unavailable')
      return new SessionHost(onExit)
    }
    const pool = new WorkerPool({ size: 4, logger, startHost })
    const sessions = await Promise.all(scale.map((path) => pool.open(path, options)))
    expect(pool.threads).toBe(1)
    expect(sessions.every((s) => s.host === sessions[0].host)).toBe(true)
    expect(lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([
      'cannot start another onnxruntime worker thread; sharing the 1 running',
    ])
    expect(await sessions[3].run([x])).toHaveLength(1)
    // A model's second instance shares the only thread rather than fail.
    expect((await pool.open(scale[0], options, [sessions[0]])).host).toBe(sessions[0].host)
    await pool.close()

    const none = new WorkerPool({
      size: 2,
      startHost: () => {
        throw new Error('ERR_WORKER_INIT_FAILED: Resource temporarily unavailable')
      },
    })
    await expect(none.open(scale[0], options)).rejects.toThrow(
      'cannot start a worker thread for onnxruntime: ERR_WORKER_INIT_FAILED: Resource temporarily unavailable',
    )
    // The backend turns that into the model's reason, as for any load failure.
    const backend = new OnnxBackend({ modelPath: scale[0], device: 'cpu', pool: none })
    await expect(backend.load()).rejects.toThrow(/cannot start a worker thread for onnxruntime/)
  })

  it('replaces a thread that died; its sessions fail, the others keep serving', async () => {
    const { logger, lines } = recordingLogger()
    const pool = new WorkerPool({ size: 2, logger })
    const [a, b] = await Promise.all([pool.open(scale[0], options), pool.open(scale[1], options)])
    expect(a.host).not.toBe(b.host)
    await a.host.terminate()
    await expect(a.run([x])).rejects.toThrow(/worker thread exited/)
    expect(a.host.alive).toBe(false)
    expect(pool.threads).toBe(1)
    expect(lines.some((l) => l.msg === 'an onnxruntime worker thread exited')).toBe(true)
    expect(await b.run([x])).toHaveLength(1)
    const c = await pool.open(scale[2], options)
    expect(pool.threads).toBe(2)
    expect(c.host).not.toBe(b.host)
    await a.release()
    await pool.close()
  })
})

describe('instances that open under load', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterAll(() => cleanup())

  const heavy = (rows = 8) => ({
    name: 'x',
    datatype: 'FP32' as const,
    shape: [rows, 128],
    data: new Float32Array(rows * 128).fill(1),
  })

  it('opens one instance of a model with no instances in its config, and the second once it is busy', async () => {
    const pool = new WorkerPool({ size: 2 })
    const path = await writeOnnx(join(dir, 'mm.onnx'), matmulChainModel(128, 8))
    const backend = new OnnxBackend({ modelPath: path, device: 'cpu', pool })
    await backend.load()
    // The scheduler may hand it two batches at once; one session is open until load needs more.
    expect(backend.describe()).toMatchObject({ instances: 2, computesOffEventLoop: true })
    expect(backend.openSessionCount).toBe(1)
    // Requests one at a time never find it busy.
    for (let i = 0; i < GROW_AFTER_BUSY_RUNS + 2; i++) await backend.run([heavy()])
    expect(backend.openSessionCount).toBe(1)
    // Concurrent runs do.
    await Promise.all(Array.from({ length: GROW_AFTER_BUSY_RUNS + 2 }, () => backend.run([heavy()])))
    await expect.poll(() => backend.openSessionCount).toBe(2)
    expect(pool.threads).toBe(2)
    const results = await Promise.all(Array.from({ length: 4 }, () => backend.run([heavy()])))
    expect((results[3][0].data as Float32Array)[0]).toBeCloseTo(1, 3)
    await backend.dispose()
    await pool.close()
  })

  it('keeps serving on the instance it has when the next cannot open', async () => {
    const { logger, lines } = recordingLogger()
    const pool = new WorkerPool({ size: 2 })
    const path = await writeOnnx(join(dir, 'gone.onnx'), matmulChainModel(128, 8))
    const backend = new OnnxBackend({ modelPath: path, device: 'cpu', pool, logger, label: 'gone:1' })
    await backend.load()
    await rm(path)
    await Promise.all(Array.from({ length: GROW_AFTER_BUSY_RUNS + 2 }, () => backend.run([heavy()])))
    await expect
      .poll(() => lines.find((l) => l.level === 'warn')?.msg)
      .toBe('cannot open another instance; serving on the ones open')
    await Promise.all(Array.from({ length: GROW_AFTER_BUSY_RUNS + 2 }, () => backend.run([heavy()])))
    expect(backend.openSessionCount).toBe(1)
    await backend.dispose()
    await pool.close()
  })
})
