import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type TuneOptions, tune } from '../../src/bench/tune.js'
import { tempDir } from '../helpers/cli.js'
import { startServer, type TestServer } from './servers.js'

// The happy path runs against the real daemon (test/commands/bench/bench-serve.test.ts); these are the
// ways a sweep must refuse or stop, against a server speaking the same load API.
describe('tune failures', () => {
  let server: TestServer
  let tmp: { dir: string; cleanup: () => Promise<void> }
  beforeAll(async () => {
    server = await startServer()
    tmp = await tempDir()
    await mkdir(join(tmp.dir, 'm'))
  })
  afterAll(async () => {
    await server.close()
    await tmp.cleanup()
  })

  const options = (over: Partial<TuneOptions['target']>, modelDir = join(tmp.dir, 'm')): TuneOptions => ({
    target: {
      kind: 'kserve',
      url: server.url,
      model: 'm',
      binary: false,
      shapes: {},
      headers: {},
      maxTokens: 1,
      ...over,
    },
    concurrency: [2],
    stop: { requests: 5 },
    warmupMs: 0,
    connections: 1,
    timeoutMs: 5000,
    workers: 0,
    targetP99Ms: 100,
    batchSizes: [8],
    queueDelaysMs: [1],
    modelDir,
  })

  it('needs a KServe model and an existing model directory', async () => {
    await expect(tune(options({ kind: 'http' }))).rejects.toMatchObject({
      code: 'BENCH_TUNE_UNSUPPORTED',
      exitCode: 2,
    })
    await expect(tune(options({}, join(tmp.dir, 'missing')))).rejects.toMatchObject({
      code: 'BENCH_MODEL_DIR_MISSING',
      exitCode: 2,
    })
  })

  it('stops when the daemon does not apply the candidate, and removes the config it wrote', async () => {
    await expect(tune(options({}))).rejects.toMatchObject({
      code: 'BENCH_TUNE_NOT_APPLIED',
      message: expect.stringMatching(/max_batch_size 3 .* 8/),
    })
    expect(existsSync(join(tmp.dir, 'm', 'config.yaml'))).toBe(false)
  })

  it('reports a load the daemon refuses', async () => {
    await mkdir(join(tmp.dir, 'dyn'))
    await expect(
      tune(options({ model: 'dyn', shapes: { x: [1, 3, 2] } }, join(tmp.dir, 'dyn'))),
    ).rejects.toMatchObject({
      code: 'BENCH_TUNE_LOAD_FAILED',
      exitCode: 1,
      message: expect.stringContaining('HTTP 400: cannot load dyn'),
    })
  })
})
