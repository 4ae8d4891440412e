import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createModelService, type HelixModelService } from '../../../src/core/infer/model-service.js'
import { HelixMetrics } from '../../../src/core/metrics.js'
import { startGrpcServer } from '../../../src/grpc/server.js'
import { buildApp } from '../../../src/http/app.js'
import { bytesOf, client, floatsOf, type TestClient } from '../../grpc/fixtures.js'
import { tempDir } from '../../helpers/cli.js'
import { DEBIAN_PYTHON, hasPythonTorch } from '../../helpers/tools.js'
import {
  addTorchModel,
  buildTorchModels,
  MIX_IO,
  type TorchModels,
  torchReference,
  torchWorkerPids,
} from '../../helpers/torch-models.js'
import { binaryBody, splitBinaryResponse } from '../../http/app/fixtures.js'
import { maxAbsDiff, recordingLogger, seededFloats } from '../infer/service-helpers.js'

const MIX_CONFIG = {
  device: 'cpu',
  max_batch_size: 16,
  max_queue_delay_ms: 50,
  ...MIX_IO,
}
const ONE_IO = (name: string) => ({
  device: 'cpu',
  max_batch_size: 0,
  inputs: [{ name: 'x', datatype: 'FP32', dims: [1, 1] }],
  outputs: [{ name, datatype: 'FP32', dims: [1, 1] }],
})

describe.skipIf(!hasPythonTorch())('PyTorch backend (TorchScript in Python workers)', () => {
  let dir: string
  let repo: string
  let cleanup: () => Promise<void>
  let models: TorchModels
  let service: HelixModelService
  let app: FastifyInstance
  let grpc: Awaited<ReturnType<typeof startGrpcServer>>
  let inference: TestClient
  const { logger } = recordingLogger()
  const batch = 3
  const a = Array.from(seededFloats(batch * 4, 1))
  const b = Array.from(seededFloats(batch * 4, 2))
  let expected: number[][]

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('helix-torch-'))
    models = await buildTorchModels(dir)
    repo = join(dir, 'models')
    await addTorchModel(repo, 'mix', models.files.mix, MIX_CONFIG)
    await addTorchModel(repo, 'named', models.files.named, MIX_CONFIG)
    await addTorchModel(repo, 'slow', models.files.slow, ONE_IO('y'))
    await addTorchModel(repo, 'raises', models.files.raises, ONE_IO('y'))
    await addTorchModel(repo, 'auto', models.files.mix, { ...MIX_CONFIG, device: 'auto' })
    await addTorchModel(repo, 'cudaonly', models.files.mix, { ...MIX_CONFIG, device: 'cuda', gpu: 0 })
    await addTorchModel(repo, 'noconfig', models.files.mix, { device: 'cpu' })
    await addTorchModel(repo, 'wrongcount', models.files.mix, {
      ...MIX_CONFIG,
      outputs: [{ name: 'y', datatype: 'FP32', dims: [3] }],
    })
    await addTorchModel(repo, 'wrongdims', models.files.mix, {
      ...MIX_CONFIG,
      outputs: [
        { name: 'y', datatype: 'FP32', dims: [5] },
        { name: 'z', datatype: 'FP32', dims: [4] },
      ],
    })
    await addTorchModel(repo, 'wrongkey', models.files.named, {
      ...MIX_CONFIG,
      outputs: [
        { name: 'y', datatype: 'FP32', dims: [3] },
        { name: 'w', datatype: 'FP32', dims: [4] },
      ],
    })
    expected = await torchReference(models.files.mix, [
      { data: a, shape: [batch, 4] },
      { data: b, shape: [batch, 4] },
    ])
    service = await createModelService({
      repositoryDir: repo,
      defaultDevice: 'cpu',
      logger,
      pytorch: { python: DEBIAN_PYTHON, run_timeout_s: 4 },
    })
    app = await buildApp({ service })
    grpc = await startGrpcServer(
      { host: '127.0.0.1', port: 0, maxMessageBytes: 64 * 1024 * 1024 },
      {
        service,
        metrics: new HelixMetrics(service, { defaultMetrics: false }),
        logger: { debug() {}, info() {}, warn() {}, error() {} },
      },
    )
    inference = client(grpc.target, 'inference.GRPCInferenceService')
  }, 120_000)
  afterAll(async () => {
    inference?.close()
    await grpc?.shutdown(1000)
    await app?.close()
    await service?.close()
    await cleanup?.()
  })

  const jsonInfer = (model: string, inputs: { name: string; data: number[]; shape: number[] }[]) =>
    app.inject({
      method: 'POST',
      url: `/v2/models/${model}/infer`,
      payload: { inputs: inputs.map((i) => ({ ...i, datatype: 'FP32' })) },
    })
  const mixInputs = () => [
    { name: 'a', data: a, shape: [batch, 4] },
    { name: 'b', data: b, shape: [batch, 4] },
  ]

  it('reports names, shapes and the CPU device from config.yaml in the metadata', async () => {
    const res = await app.inject({ method: 'GET', url: '/v2/models/mix' })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toMatchObject({
      name: 'mix',
      platform: 'pytorch_libtorch',
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [-1, 4] },
        { name: 'b', datatype: 'FP32', shape: [-1, 4] },
      ],
      outputs: [
        { name: 'y', datatype: 'FP32', shape: [-1, 3] },
        { name: 'z', datatype: 'FP32', shape: [-1, 4] },
      ],
    })
  })

  it('device auto without CUDA falls back to the CPU visibly (index and health)', async () => {
    const row = service.index().find((r) => r.name === 'auto')
    expect(row).toMatchObject({ state: 'READY', executionProvider: 'cpu', device: 'cpu' })
    expect(row?.fallbackReason).toMatch(/^torch\.cuda\.is_available\(\) is False \(torch \S+, CUDA build/)
    const res = await jsonInfer('auto', mixInputs())
    expect(maxAbsDiff(res.json().outputs[0].data, expected[0])).toBeLessThanOrEqual(1e-5)
  })

  it('device cuda without CUDA leaves the model UNAVAILABLE saying why (no silent CPU)', () => {
    const row = service.index().find((r) => r.name === 'cudaonly')
    expect(row).toMatchObject({ state: 'UNAVAILABLE' })
    expect(row?.reason).toMatch(
      /^RuntimeError: device: cuda was asked for but torch\.cuda\.is_available\(\) is False \(torch \S+, CUDA build/,
    )
  })

  it('answers REST JSON exactly as torch does directly (tuple outputs by position)', async () => {
    const res = await jsonInfer('mix', mixInputs())
    expect(res.statusCode, res.body).toBe(200)
    const outputs = res.json().outputs as { name: string; shape: number[]; data: number[] }[]
    expect(outputs.map((o) => [o.name, o.shape])).toEqual([
      ['y', [batch, 3]],
      ['z', [batch, 4]],
    ])
    expect(maxAbsDiff(outputs[0].data, expected[0])).toBeLessThanOrEqual(1e-5)
    expect(maxAbsDiff(outputs[1].data, expected[1])).toBeLessThanOrEqual(1e-5)
  })

  it('maps dict outputs by name and answers the binary extension exactly as torch does', async () => {
    const { body, headerLength } = binaryBody(
      {
        inputs: [
          { name: 'a', datatype: 'FP32', shape: [batch, 4], parameters: { binary_data_size: 48 } },
          { name: 'b', datatype: 'FP32', shape: [batch, 4], parameters: { binary_data_size: 48 } },
        ],
        outputs: [{ name: 'z', parameters: { binary_data: true } }],
      },
      new Float32Array(a),
      new Float32Array(b),
    )
    const res = await app.inject({
      method: 'POST',
      url: '/v2/models/named/infer',
      headers: {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': String(headerLength),
      },
      payload: body,
    })
    expect(res.statusCode, res.body).toBe(200)
    const { header, tail } = splitBinaryResponse(
      res.rawPayload,
      Number(res.headers['inference-header-content-length']),
    )
    expect(header.outputs).toEqual([
      { name: 'z', datatype: 'FP32', shape: [batch, 4], parameters: { binary_data_size: 48 } },
    ])
    expect(maxAbsDiff(floatsOf(tail), expected[1])).toBeLessThanOrEqual(1e-5)
  })

  it('answers gRPC ModelInfer exactly as torch does', async () => {
    const response = await inference.call<{
      outputs: { name: string; shape: string[] }[]
      raw_output_contents: Buffer[]
    }>('ModelInfer', {
      model_name: 'mix',
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [batch, 4] },
        { name: 'b', datatype: 'FP32', shape: [batch, 4] },
      ],
      raw_input_contents: [bytesOf(new Float32Array(a)), bytesOf(new Float32Array(b))],
    })
    expect(response.outputs.map((o) => [o.name, o.shape])).toEqual([
      ['y', ['3', '3']],
      ['z', ['3', '4']],
    ])
    expect(maxAbsDiff(floatsOf(response.raw_output_contents[0]), expected[0])).toBeLessThanOrEqual(1e-5)
    expect(maxAbsDiff(floatsOf(response.raw_output_contents[1]), expected[1])).toBeLessThanOrEqual(1e-5)
  })

  it('batches concurrent requests into one run and splits the answers back exactly', async () => {
    // 12 one-row requests at once: while the worker runs the first, the rest gather into batches.
    const rows = Array.from({ length: 12 }, (_, i) => i % batch)
    const results = await Promise.all(
      rows.map((r) =>
        service.infer({
          model: 'mix',
          inputs: [
            { name: 'a', datatype: 'FP32', shape: [1, 4], data: new Float32Array(a.slice(r * 4, r * 4 + 4)) },
            { name: 'b', datatype: 'FP32', shape: [1, 4], data: new Float32Array(b.slice(r * 4, r * 4 + 4)) },
          ],
        }),
      ),
    )
    expect(Math.max(...results.map((r) => r.timing.batchSize))).toBeGreaterThan(1)
    for (const [i, r] of rows.entries()) {
      const y = Array.from(results[i].outputs[0].data as Float32Array)
      expect(maxAbsDiff(y, expected[0].slice(r * 3, r * 3 + 3))).toBeLessThanOrEqual(1e-5)
    }
    const rest = await Promise.all(
      rows.map((r) =>
        jsonInfer('mix', [
          { name: 'a', data: a.slice(r * 4, r * 4 + 4), shape: [1, 4] },
          { name: 'b', data: b.slice(r * 4, r * 4 + 4), shape: [1, 4] },
        ]),
      ),
    )
    for (const [i, r] of rows.entries()) {
      expect(rest[i].statusCode).toBe(200)
      const z = rest[i].json().outputs[1].data as number[]
      expect(maxAbsDiff(z, expected[1].slice(r * 4, r * 4 + 4))).toBeLessThanOrEqual(1e-5)
    }
  })

  it('a model that raises answers 500 BACKEND_FAILED with its message and keeps serving', async () => {
    const res = await jsonInfer('raises', [{ name: 'x', data: [-1], shape: [1, 1] }])
    expect(res.statusCode).toBe(500)
    expect(res.json().error).toBe(
      "Model 'raises' version '1' failed to run: RuntimeError: negative input refused",
    )
    const ok = await jsonInfer('raises', [{ name: 'x', data: [1], shape: [1, 1] }])
    expect(ok.json().outputs[0].data).toEqual([2])
  })

  it('a worker that dies fails its in-flight request with 503 and is restarted; other models keep serving', async () => {
    const pending = jsonInfer('slow', [{ name: 'x', data: [1e9], shape: [1, 1] }])
    let pids: number[] = []
    for (let i = 0; i < 50 && pids.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100))
      pids = await torchWorkerPids(join(repo, 'slow', '1', 'model.pt'))
    }
    expect(pids).toHaveLength(1)
    await new Promise((r) => setTimeout(r, 300))
    process.kill(pids[0], 'SIGKILL')
    const res = await pending
    expect(res.statusCode).toBe(503)
    expect(res.json().error).toMatch(
      /^Model 'slow:1' is not ready: the PyTorch worker was killed by SIGKILL; the worker is being restarted\.$/,
    )
    expect((await jsonInfer('mix', mixInputs())).statusCode).toBe(200)
    const again = await jsonInfer('slow', [{ name: 'x', data: [2], shape: [1, 1] }])
    expect(again.statusCode, again.body).toBe(200)
    expect(again.json().outputs[0].data[0]).toBeCloseTo(Math.sin(Math.sin(2)), 5)
    const now = await torchWorkerPids(join(repo, 'slow', '1', 'model.pt'))
    expect(now).toHaveLength(1)
    expect(now[0]).not.toBe(pids[0])
  }, 30_000)

  it('a hung worker is killed after backends.pytorch.run_timeout_s and its request gets 503', async () => {
    const res = await jsonInfer('slow', [{ name: 'x', data: [1e9], shape: [1, 1] }])
    expect(res.statusCode).toBe(503)
    expect(res.json().error).toContain('did not answer within 4 s')
    const again = await jsonInfer('slow', [{ name: 'x', data: [1], shape: [1, 1] }])
    expect(again.statusCode, again.body).toBe(200)
  }, 30_000)

  it('a config.yaml without inputs/outputs leaves the model UNAVAILABLE with the reason', () => {
    const row = service.index().find((r) => r.name === 'noconfig')
    expect(row).toMatchObject({ state: 'UNAVAILABLE' })
    expect(row?.reason).toContain('config.yaml must declare inputs and outputs')
  })

  it('a config.yaml that disagrees with what the model returns gives a clear error', async () => {
    const count = await jsonInfer('wrongcount', mixInputs())
    expect(count.statusCode).toBe(500)
    expect(count.json().error).toContain(
      'the model returned 2 tensors but config.yaml declares 1 outputs (y)',
    )
    const dims = await jsonInfer('wrongdims', mixInputs())
    expect(dims.json().error).toContain(
      "output 'y' has shape [3, 3] but config.yaml declares dims [5] after the batch dimension",
    )
    const key = await jsonInfer('wrongkey', mixInputs())
    expect(key.json().error).toContain("the model's output dict has no 'w'")
  })
})

describe.skipIf(!hasPythonTorch())('PyTorch backend without torch or Python', () => {
  it('a Python without torch leaves the model UNAVAILABLE naming the install; a missing Python is named', async () => {
    const { dir, cleanup } = await tempDir('helix-notorch-')
    try {
      const models = await buildTorchModels(dir)
      const repo = join(dir, 'models')
      await addTorchModel(repo, 'mix', models.files.mix, MIX_CONFIG)
      // Debian's Python without site-packages: a real interpreter that cannot import torch.
      const python = join(dir, 'python-without-torch')
      await writeFile(python, `#!/bin/sh\nexec ${DEBIAN_PYTHON} -S "$@"\n`)
      await chmod(python, 0o755)
      for (const [exe, reason] of [
        [
          python,
          "ModuleNotFoundError: No module named 'torch'; install torch for this Python: apt-get install python3-torch (Debian) or pip install torch",
        ],
        [join(dir, 'nope'), `${join(dir, 'nope')} does not exist (backends.pytorch.python in helix.yaml)`],
      ]) {
        const service = await createModelService({
          repositoryDir: repo,
          defaultDevice: 'cpu',
          logger: recordingLogger().logger,
          pytorch: { python: exe },
        })
        try {
          const row = service.index().find((r) => r.name === 'mix')
          expect(row).toMatchObject({ state: 'UNAVAILABLE' })
          expect(row?.reason).toContain(reason)
        } finally {
          await service.close()
        }
      }
    } finally {
      await cleanup()
    }
  }, 60_000)
})
