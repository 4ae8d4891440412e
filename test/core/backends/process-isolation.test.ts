import { readdir, readlink, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_INSTANCE_CRASHES, OnnxBackend } from '../../../src/core/backends/onnx-backend.js'
import { WorkerPool } from '../../../src/core/backends/worker-pool.js'
import { type HostedSession, SessionHost } from '../../../src/core/backends/worker-session.js'
import { TEXT_MODEL_FILE } from '../../../src/core/generate/hf-folder.js'
import { TextBackend } from '../../../src/core/generate/text-backend.js'
import type { TextEngine } from '../../../src/core/generate/types.js'
import { GpuReservations } from '../../../src/core/gpu/placement.js'
import { parseModelConfig } from '../../../src/core/infer/model-config.js'
import { allocateMovable } from '../../../src/core/infer/tensor-data.js'
import type { Tensor, TensorData } from '../../../src/core/infer/types.js'
import { silentLogger } from '../../../src/core/logger.js'
import { ROOT, tempDir } from '../../helpers/cli.js'
import {
  IDENTITY_DATATYPES,
  identityModel,
  scaleModel,
  slowOnDemandModel,
  writeExternalWeightsModel,
  writeOnnx,
} from '../../helpers/onnx-models.js'
import { writeEmbeddingModel } from '../../helpers/text-models.js'
import { f32, recordingLogger, rejection } from '../infer/service-helpers.js'

/**
 * `isolation: process`: each instance in a worker process of its own. The crashes here are real: a
 * model whose memory-mapped weights are truncated under it faults inside onnxruntime (SIGBUS), and
 * signals sent to the worker process (SIGSEGV, SIGKILL) end it the way a native fault or the kernel's
 * OOM killer would. The test process itself is the daemon that must survive them.
 */

const options = { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1 }
const ones = f32('x', [1, 4], [1, 1, 1, 1])
const idx = (...rows: number[]): Tensor => ({
  name: 'idx',
  datatype: 'INT64',
  shape: [rows.length],
  data: BigInt64Array.from(rows.map(BigInt)),
})
const row = (r: number) => [4 * r, 4 * r + 1, 4 * r + 2, 4 * r + 3]

/** Whether a process with this id exists (signal 0 checks without sending anything). */
function exists(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function gone(pid: number, withinMs = 5000): Promise<boolean> {
  const until = Date.now() + withinMs
  while (Date.now() < until) {
    if (!exists(pid)) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return !exists(pid)
}

const hostOf = (backend: OnnxBackend) =>
  (backend as unknown as { sessions: HostedSession[] }).sessions[0].host

describe('isolation: process', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let scale: string
  let slow: string
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    scale = await writeOnnx(join(dir, 'scale.onnx'), scaleModel(3))
    slow = await writeOnnx(join(dir, 'slow.onnx'), slowOnDemandModel())
  })
  afterAll(() => cleanup())

  it('runs a session in a process of its own with the same answers as a thread, and ends the process on release', async () => {
    const pool = new WorkerPool({ size: 1 })
    const isolated = await pool.openIsolated(scale, options)
    const threaded = await pool.open(scale, options)
    const pid = isolated.host.pid as number
    expect(pid).toBeGreaterThan(0)
    expect(pid).not.toBe(process.pid)
    expect(isolated.host.isolation).toBe('process')
    const x = f32('x', [2, 4], [1, 2, 3, 4, -1, 0.5, 1e6, -7.25])
    const [fromProcess] = await isolated.run([x])
    const [fromThread] = await threaded.run([x])
    expect(fromProcess.data).toEqual(fromThread.data)
    expect(fromProcess.shape).toEqual([2, 4])
    // The process does not count towards the pool's threads.
    expect(pool.threads).toBe(1)
    await isolated.release()
    expect(await gone(pid)).toBe(true)
    await threaded.release()
    await pool.close()
  })

  it('every datatype crosses to a worker process and back unchanged, through the shm file and through the messages alike', async () => {
    const samples: Record<string, TensorData> = {
      FP32: Float32Array.from([1.5, -2, 3.25, Number.NaN, Infinity, -0]),
      FP64: Float64Array.from([1e300, -2.5, 3, 4, 5, 6]),
      FP16: Uint16Array.from([0x3c00, 0xc000, 0x7c00, 0x0001, 0x8000, 0x3555]),
      INT8: Int8Array.from([-128, 127, 0, 1, -1, 5]),
      UINT8: Uint8Array.from([0, 255, 1, 2, 3, 4]),
      INT16: Int16Array.from([-32768, 32767, 0, 1, -1, 5]),
      UINT16: Uint16Array.from([0, 65535, 1, 2, 3, 4]),
      INT32: Int32Array.from([-(2 ** 31), 2 ** 31 - 1, 0, 1, -1, 5]),
      UINT32: Uint32Array.from([0, 2 ** 32 - 1, 1, 2, 3, 4]),
      INT64: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 0n, 1n, -1n, 5n]),
      UINT64: BigUint64Array.from([0n, 2n ** 64n - 1n, 1n, 2n, 3n, 4n]),
      BOOL: Uint8Array.from([1, 0, 1, 1, 0, 0]),
      BYTES: ['a', '', 'héllo', 'x'.repeat(1000), 'tab\tnewline\n', 'z'].map((t) =>
        new TextEncoder().encode(t),
      ),
    }
    const hosts = [
      new SessionHost(undefined, 'process'),
      new SessionHost(undefined, 'process', false),
      new SessionHost(undefined, 'thread'),
    ]
    // The worker process holds the tensor file open, its name already gone; the other has none.
    const shmFilesOf = async (host: SessionHost) => {
      await host.open(join(dir, 'scale.onnx'), options).then((s) => s.release())
      const fds = await readdir(`/proc/${host.pid}/fd`)
      const links = await Promise.all(fds.map((fd) => readlink(`/proc/${host.pid}/fd/${fd}`).catch(() => '')))
      return links.filter((l) => l.startsWith('/dev/shm/helix-onnx-'))
    }
    try {
      expect(await shmFilesOf(hosts[0])).toEqual([
        expect.stringMatching(/^\/dev\/shm\/helix-onnx-\d+-\d+ \(deleted\)$/),
      ])
      expect(await shmFilesOf(hosts[1])).toEqual([])
      for (const datatype of IDENTITY_DATATYPES) {
        const path = await writeOnnx(join(dir, `identity-${datatype}.onnx`), identityModel(datatype))
        const input: Tensor = { name: 'input', datatype, shape: [2, 3], data: samples[datatype] }
        for (const host of hosts) {
          const session = await host.open(path, options)
          const [output] = await session.run([input])
          expect({ isolation: host.isolation, ...output }).toEqual({
            isolation: host.isolation,
            datatype,
            name: 'output',
            shape: [2, 3],
            data: samples[datatype],
          })
          await session.release()
        }
      }
    } finally {
      await Promise.all(hosts.map((h) => h.terminate()))
    }
  })

  it('batches whose buffers go back to the spare buffers as soon as they are sent keep their own answers, under concurrency', async () => {
    const pool = new WorkerPool({ size: 2 })
    const backend = new OnnxBackend({
      modelPath: scale,
      device: 'cpu',
      pool,
      instances: 2,
      isolation: 'process',
    })
    await backend.load()
    // 20 senders, 10 batches each: a batch is made while others wait for the tensor file, so a buffer
    // given back too early would be refilled under a batch that has not been written yet.
    const senders = Array.from({ length: 20 }, async (_, sender) => {
      const wrong: number[] = []
      for (let k = 0; k < 10; k++) {
        const value = sender * 100 + k
        // What the batcher does: a batch in a movable buffer (a spare one when there is one).
        const data = allocateMovable('FP32', 16 * 4) as Float32Array
        data.fill(value)
        const [y] = await backend.run([{ name: 'x', datatype: 'FP32', shape: [16, 4], data }])
        if (!(y.data as Float32Array).every((v) => v === 3 * value)) wrong.push(value)
      }
      return wrong
    })
    expect((await Promise.all(senders)).flat()).toEqual([])
    await backend.dispose()
    await pool.close()
  })

  it('a run waiting for the tensor file when its worker dies fails as a lost instance, never on the closed file', async () => {
    const host = new SessionHost(undefined, 'process')
    const session = await host.open(slow, options)
    // The first run computes for a while; the others wait for the file behind it.
    const running = session.run([f32('x', [1, 4], [2_000_000, 1, 1, 1])], ['y'])
    const waiting = [1, 2, 3].map(() => session.run([ones], ['y']))
    await new Promise((resolve) => setTimeout(resolve, 100))
    process.kill(host.pid as number, 'SIGKILL')
    for (const run of [running, ...waiting]) {
      const error = await rejection(run)
      expect(error.name).toBe('WorkerExitedError')
      expect(error.message).toBe('its onnxruntime worker process was killed by SIGKILL')
    }
    await host.ended
  })

  it('a native fault inside onnxruntime (weights truncated under a loaded model: SIGBUS) costs that instance, not this process; the model then goes unavailable with the reason', async () => {
    const { logger, lines } = recordingLogger()
    const pool = new WorkerPool({ size: 1, logger })
    const modelPath = join(dir, 'external', 'model.onnx')
    const weights = await writeExternalWeightsModel(modelPath)
    const reasons: string[] = []
    const backend = new OnnxBackend({
      modelPath,
      device: 'cpu',
      pool,
      instances: 1,
      isolation: 'process',
      label: 'ext:1',
      logger,
      onUnavailable: (reason) => reasons.push(reason),
    })
    await backend.load()
    const neighbour = new OnnxBackend({ modelPath: scale, device: 'cpu', pool, instances: 1, label: 'b:1' })
    await neighbour.load()
    expect((await backend.run([idx(3, 60_000)]))[0].data).toEqual(
      Float32Array.from([...row(3), ...row(60_000)]),
    )
    const pid = hostOf(backend).pid as number

    await truncate(weights, 0)
    const error = await rejection(backend.run([idx(65_000)]))
    expect(error.code).toBe('MODEL_INSTANCE_CRASHED')
    expect(error.message).toMatch(
      /^Model 'ext' version '1' lost this request: its onnxruntime worker process was killed by SIGBUS/,
    )
    expect(await gone(pid)).toBe(true)
    // This process (the daemon) lives on, and so does the model on its thread.
    expect((await neighbour.run([ones]))[0].data).toEqual(Float32Array.from([3, 3, 3, 3]))
    // The file cannot be loaded any more: the reopen gives up and says why.
    const next = await rejection(backend.run([idx(1)]))
    expect(next.code).toBe('MODEL_NOT_READY')
    expect(reasons).toHaveLength(1)
    expect(reasons[0]).toMatch(
      /^an instance lost with its onnxruntime worker process \(its onnxruntime worker process was killed by SIGBUS\) could not be reopened after 4 tries: /,
    )
    expect(lines.map((l) => l.msg)).toContain('an onnxruntime worker process exited')
    await Promise.all([backend.dispose(), neighbour.dispose()])
    await pool.close()
  })

  it('an instance whose process dies (SIGSEGV, SIGKILL) reopens in a new process and serves; the third death in a minute makes it unavailable', async () => {
    const pool = new WorkerPool({ size: 1 })
    const reasons: string[] = []
    const backend = new OnnxBackend({
      modelPath: scale,
      device: 'cpu',
      pool,
      instances: 1,
      isolation: 'process',
      label: 'crashy:1',
      onUnavailable: (reason) => reasons.push(reason),
    })
    await backend.load()
    const pids: number[] = []
    for (const signal of ['SIGSEGV', 'SIGKILL'] as const) {
      const pid = hostOf(backend).pid as number
      pids.push(pid)
      process.kill(pid, signal)
      expect(await gone(pid)).toBe(true)
      await hostOf(backend).ended
      // The next request waits for the instance to reopen in a new process.
      expect((await backend.run([ones]))[0].data).toEqual(Float32Array.from([3, 3, 3, 3]))
      expect(hostOf(backend).pid).not.toBe(pid)
    }
    const last = hostOf(backend)
    process.kill(last.pid as number, 'SIGABRT')
    await last.ended
    const error = await rejection(backend.run([ones]))
    expect(error.code).toBe('MODEL_NOT_READY')
    expect(reasons).toEqual([
      `its onnxruntime worker processes stopped ${MAX_INSTANCE_CRASHES} times within 60 s (last: its onnxruntime worker process was killed by SIGABRT); load it again once the cause is fixed`,
    ])
    await backend.dispose()
    await pool.close()
  })

  it('run_timeout_s kills a hung process at once (no waiting for onnxruntime to return), and the instance reopens', async () => {
    const pool = new WorkerPool({ size: 1 })
    const backend = new OnnxBackend({
      modelPath: slow,
      device: 'cpu',
      pool,
      instances: 1,
      isolation: 'process',
      runTimeoutMs: 300,
      label: 'slow:1',
    })
    await backend.load()
    const pid = hostOf(backend).pid as number
    const started = performance.now()
    // 50 million MatMuls: minutes of onnxruntime work; a thread could only be waited for.
    const error = await rejection(backend.run([f32('x', [1, 4], [50_000_000, 1, 1, 1])], ['y']))
    expect(error.code).toBe('MODEL_INSTANCE_CRASHED')
    expect(error.message).toContain(
      'a run took longer than run_timeout_s (0.3 s), so its onnxruntime worker process was killed',
    )
    expect(await gone(pid, 2000)).toBe(true)
    expect(performance.now() - started).toBeLessThan(3000)
    expect((await backend.run([ones], ['y']))[0].data).toEqual(Float32Array.from([2, 2, 2, 2]))
    await backend.dispose()
    await pool.close()
  })

  it('an embedding model with isolation: process runs its encoder in a worker process, with the answers of a thread, and survives a SIGSEGV there', async () => {
    const folder = join(dir, 'embed')
    await writeEmbeddingModel(folder, { seed: 5 })
    const pool = new WorkerPool({ size: 1 })
    const open = async (isolation: 'thread' | 'process') => {
      const backend = new TextBackend({
        modelPath: join(folder, TEXT_MODEL_FILE),
        config: parseModelConfig(`isolation: ${isolation}\n`),
        device: 'cpu',
        label: `embed-${isolation}:1`,
        logger: silentLogger,
        discoverGpus: async () => ({ gpus: [] }),
        reservations: new GpuReservations(),
        workerPool: pool,
        isolation,
      })
      await backend.load()
      return backend
    }
    const threaded = await open('thread')
    const isolated = await open('process')
    const encoderHost = (backend: TextBackend) =>
      (backend as unknown as { encoder: { sessions: HostedSession[] } }).encoder.sessions[0].host
    expect(encoderHost(isolated).isolation).toBe('process')
    const request = { inputs: ['the sea', 'a longer sentence about the sea and the sky'] }
    const expected = (await (threaded.text as TextEngine).embed(request)).embeddings
    expect((await (isolated.text as TextEngine).embed(request)).embeddings).toEqual(expected)
    const pid = encoderHost(isolated).pid as number
    process.kill(pid, 'SIGSEGV')
    await encoderHost(isolated).ended
    expect((await (isolated.text as TextEngine).embed(request)).embeddings).toEqual(expected)
    expect(encoderHost(isolated).pid).not.toBe(pid)
    await Promise.all([threaded.dispose(), isolated.dispose()])
    await pool.close()
  })

  it('a daemon killed with SIGKILL leaves no worker process behind', async () => {
    // The built pool (npm test builds first) in a process of its own, killed once its worker runs.
    const pool = pathToFileURL(join(ROOT, 'dist/core/backends/worker-pool.js')).href
    const code = `import(${JSON.stringify(pool)}).then(async ({ WorkerPool }) => {
      const session = await new WorkerPool({ size: 1 }).openIsolated(${JSON.stringify(scale)}, {})
      console.log(session.host.pid)
      process.kill(process.pid, 'SIGKILL')
    })`
    const daemon = await execa(process.execPath, ['-e', code], { reject: false, timeout: 30_000 })
    expect(daemon.signal).toBe('SIGKILL')
    const pid = Number(String(daemon.stdout).trim())
    expect(pid).toBeGreaterThan(0)
    expect(await gone(pid)).toBe(true)
  })
})
