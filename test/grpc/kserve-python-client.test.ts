import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import * as ort from 'onnxruntime-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDir } from '../helpers/cli.js'
import { CLS_MODEL_PATH } from '../helpers/onnx-models.js'
import { DEBIAN_PYTHON, hasPythonGrpc } from '../helpers/tools.js'
import { type TestGrpc, testGrpc } from './fixtures.js'

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'grpc')

/** A seeded pseudo-random image for the PP-OCR text-direction classifier: [1, 3, 48, 192]. */
function image(): { shape: number[]; data: number[] } {
  const shape = [1, 3, 48, 192]
  let seed = 42
  const data = Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31
    return seed / 2 ** 31 - 0.5
  })
  return { shape, data }
}

describe.skipIf(!hasPythonGrpc())('a KServe Python gRPC client generated from KServe’s own proto', () => {
  let t: TestGrpc
  let stubs: { dir: string; cleanup: () => Promise<void> }
  beforeAll(async () => {
    t = await testGrpc()
    stubs = await tempDir('helix-kserve-py-')
    await execa(DEBIAN_PYTHON, [
      '-m',
      'grpc_tools.protoc',
      `-I${join(FIXTURES, 'kserve')}`,
      `--python_out=${stubs.dir}`,
      `--grpc_python_out=${stubs.dir}`,
      'grpc_predict_v2.proto',
    ])
  }, 60_000)
  afterAll(async () => {
    await t?.close()
    await stubs?.cleanup()
  })

  it('calls every KServe method on PP-OCR cls; raw and typed outputs equal onnxruntime’s (≤ 1e-5)', async () => {
    const input = image()
    const session = await ort.InferenceSession.create(await readFile(CLS_MODEL_PATH))
    const reference = await session.run({
      x: new ort.Tensor('float32', Float32Array.from(input.data), input.shape),
    })
    const expected = Array.from(reference['softmax_0.tmp_0'].data as Float32Array)
    await session.release()

    const request = join(stubs.dir, 'request.json')
    await writeFile(request, JSON.stringify({ model: 'cls', input: 'x', ...input, token: null }))
    const run = await execa(DEBIAN_PYTHON, [
      join(FIXTURES, 'kserve_client.py'),
      stubs.dir,
      t.server.target,
      request,
    ])
    const out = JSON.parse(run.stdout)

    expect(out.live).toBe(true)
    expect(out.ready).toBe(true)
    expect(out.server).toEqual({ name: 'helix', extensions: ['model_repository', 'model_stream_infer'] })
    expect(out.model_ready).toBe(true)
    expect(out.metadata).toEqual({
      name: 'cls',
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3, -1, -1] }],
    })
    for (const mode of ['raw', 'typed'] as const) {
      const result = out[mode]
      expect(result).toMatchObject({
        id: `py-${mode}`,
        model_name: 'cls',
        model_version: '1',
        name: 'softmax_0.tmp_0',
        datatype: 'FP32',
        shape: [1, 2],
        raw: mode === 'raw',
      })
      expect(result.data).toHaveLength(expected.length)
      const maxDiff = Math.max(...result.data.map((v: number, i: number) => Math.abs(v - expected[i])))
      expect(maxDiff).toBeLessThanOrEqual(1e-5)
    }
    expect(out.unknown).toEqual({
      code: 'NOT_FOUND',
      details: expect.stringContaining("Model 'no-such-model'"),
    })
    expect(out.unload).toEqual({ model_name: 'cls', isUnloaded: true })
    expect(out.ready_after_unload).toBe(false)
    expect(out.load).toEqual({ model_name: 'cls', isLoaded: true })
    expect(out.ready_after_load).toBe(true)
  }, 60_000)
})
