import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TFJS_CPU_ONLY, TfjsBackend } from '../../../src/core/backends/tfjs/tfjs-backend.js'
import { readTfjsModel } from '../../../src/core/backends/tfjs/tfjs-files.js'
import { TfjsWorker } from '../../../src/core/backends/tfjs/tfjs-worker.js'
import { createModelService, type HelixModelService } from '../../../src/core/infer/model-service.js'
import type { Tensor } from '../../../src/core/infer/types.js'
import { silentLogger } from '../../../src/core/logger.js'
import { HelixMetrics } from '../../../src/core/metrics.js'
import { startGrpcServer } from '../../../src/grpc/server.js'
import { buildApp } from '../../../src/http/app.js'
import { bytesOf, client, floatsOf, type TestClient } from '../../grpc/fixtures.js'
import { tempDir } from '../../helpers/cli.js'
import { addTfjsModel, buildTfjsModels, buildWideModel, type TfjsModels } from '../../helpers/tfjs-models.js'
import { binaryBody, splitBinaryResponse } from '../../http/app/fixtures.js'
import { maxAbsDiff, recordingLogger, seededFloats } from '../infer/service-helpers.js'

const BATCHING = { device: 'cpu', max_batch_size: 16, max_queue_delay_ms: 50 }
const MIX_SIGNATURE = {
  inputs: [
    { name: 'a', datatype: 'FP32', shape: [-1, 4] },
    { name: 'b', datatype: 'FP32', shape: [-1, 4] },
  ],
  outputs: [
    { name: 'y', datatype: 'FP32', shape: [-1, 3] },
    { name: 'z', datatype: 'FP32', shape: [-1, 2] },
  ],
}

const f32 = (name: string, shape: number[], data: number[]): Tensor => ({
  name,
  datatype: 'FP32',
  shape,
  data: new Float32Array(data),
})

describe('TensorFlow.js backend (model.json in tfjs-backend-wasm worker threads)', () => {
  let dir: string
  let repo: string
  let cleanup: () => Promise<void>
  let models: TfjsModels
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
    ;({ dir, cleanup } = await tempDir('helix-tfjs-'))
    models = await buildTfjsModels(dir)
    repo = join(dir, 'models')
    await addTfjsModel(repo, 'layers', models.files.layers, BATCHING)
    await addTfjsModel(repo, 'graph', models.files.graph, { ...BATCHING, instances: 2 })
    await addTfjsModel(repo, 'frozen', models.files.frozen, BATCHING)
    await addTfjsModel(repo, 'ints', models.files.ints, BATCHING)
    await addTfjsModel(repo, 'auto', models.files.graph, { ...BATCHING, device: 'auto' })
    await addTfjsModel(repo, 'cudaonly', models.files.graph, { ...BATCHING, device: 'cuda' })
    const corrupt = await addTfjsModel(repo, 'corrupt', models.files.layers, BATCHING)
    await writeFile(corrupt, '{"modelTopology": {"class_name": "Model", ')
    const noShard = await addTfjsModel(repo, 'noshard', models.files.graph, BATCHING)
    await rm(join(noShard, '..', 'group1-shard2of2.bin'))
    const truncated = await addTfjsModel(repo, 'truncated', models.files.layers, BATCHING)
    const shard = join(truncated, '..', 'group1-shard1of1.bin')
    await writeFile(shard, (await readFile(shard)).subarray(0, 100))
    // A graph taking a complex64 tensor: tfjs loads it, helix has no datatype for it.
    await mkdir(join(repo, 'complex', '1'), { recursive: true })
    await writeFile(
      join(repo, 'complex', '1', 'model.json'),
      JSON.stringify({
        format: 'graph-model',
        modelTopology: {
          node: [
            {
              name: 'c',
              op: 'Placeholder',
              attr: { shape: { shape: { dim: [{ size: '-1' }] } }, dtype: { type: 'DT_COMPLEX64' } },
            },
            { name: 'out', op: 'Identity', input: ['c'], attr: { T: { type: 'DT_COMPLEX64' } } },
          ],
          versions: { producer: 1482 },
        },
        weightsManifest: [],
      }),
    )
    expected = await models.reference('graph', {
      a: { data: a, shape: [batch, 4] },
      b: { data: b, shape: [batch, 4] },
    })
    service = await createModelService({ repositoryDir: repo, defaultDevice: 'cpu', logger })
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

  const jsonInfer = (
    model: string,
    inputs: { name: string; data: number[]; shape: number[] }[],
    datatype = 'FP32',
  ) =>
    app.inject({
      method: 'POST',
      url: `/v2/models/${model}/infer`,
      payload: { inputs: inputs.map((i) => ({ ...i, datatype })) },
    })
  const mixInputs = () => [
    { name: 'a', data: a, shape: [batch, 4] },
    { name: 'b', data: b, shape: [batch, 4] },
  ]
  const row = (values: number[], r: number, width: number) => values.slice(r * width, r * width + width)

  it('the graph model and the layers model built from the same weights agree when tfjs runs them directly', async () => {
    const layers = await models.reference('layers', {
      a: { data: a, shape: [batch, 4] },
      b: { data: b, shape: [batch, 4] },
    })
    expect(maxAbsDiff(layers[0], expected[0])).toBeLessThanOrEqual(1e-5)
    expect(maxAbsDiff(layers[1], expected[1])).toBeLessThanOrEqual(1e-5)
  })

  it('reports names, datatypes and shapes from the signature (graph) and the inputs/outputs (layers)', async () => {
    for (const model of ['graph', 'layers']) {
      const res = await app.inject({ method: 'GET', url: `/v2/models/${model}` })
      expect(res.statusCode).toBe(200)
      expect(res.json()).toMatchObject({ name: model, platform: 'tensorflow_js', ...MIX_SIGNATURE })
    }
    expect(service.index().find((r) => r.name === 'graph')).toMatchObject({
      state: 'READY',
      executionProvider: 'cpu',
      device: 'cpu',
    })
  })

  it('learns the outputs of a graph without a signature from probe runs (node names, dynamic batch)', async () => {
    const res = await app.inject({ method: 'GET', url: '/v2/models/frozen' })
    expect(res.json()).toMatchObject({
      inputs: MIX_SIGNATURE.inputs,
      outputs: [
        { name: 'Identity', datatype: 'FP32', shape: [-1, 3] },
        { name: 'Identity_1', datatype: 'FP32', shape: [-1, 2] },
      ],
    })
    const out = await jsonInfer('frozen', mixInputs())
    expect(out.statusCode, out.body).toBe(200)
    expect(maxAbsDiff(out.json().outputs[0].data, expected[0])).toBeLessThanOrEqual(1e-5)
  })

  it('device auto runs on the CPU and says why (index and health); device cuda is UNAVAILABLE saying why', async () => {
    const auto = service.index().find((r) => r.name === 'auto')
    expect(auto).toMatchObject({
      state: 'READY',
      executionProvider: 'cpu',
      device: 'cpu',
      fallbackReason: TFJS_CPU_ONLY,
    })
    const res = await jsonInfer('auto', mixInputs())
    expect(maxAbsDiff(res.json().outputs[0].data, expected[0])).toBeLessThanOrEqual(1e-5)
    const cuda = service.index().find((r) => r.name === 'cudaonly')
    expect(cuda).toMatchObject({ state: 'UNAVAILABLE' })
    expect(cuda?.reason).toBe(
      `device: cuda was asked for, but ${TFJS_CPU_ONLY}; set device: cpu or auto, or convert the model to ONNX (python -m tf2onnx.convert) to run it on a GPU`,
    )
  })

  it('answers REST JSON exactly as tfjs does directly, for the graph and the layers model', async () => {
    for (const model of ['graph', 'layers']) {
      const res = await jsonInfer(model, mixInputs())
      expect(res.statusCode, res.body).toBe(200)
      const outputs = res.json().outputs as { name: string; shape: number[]; data: number[] }[]
      expect(outputs.map((o) => [o.name, o.shape])).toEqual([
        ['y', [batch, 3]],
        ['z', [batch, 2]],
      ])
      expect(maxAbsDiff(outputs[0].data, expected[0])).toBeLessThanOrEqual(1e-5)
      expect(maxAbsDiff(outputs[1].data, expected[1])).toBeLessThanOrEqual(1e-5)
    }
  })

  it('answers the binary extension exactly as tfjs does (one output asked for)', async () => {
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
      url: '/v2/models/graph/infer',
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
      { name: 'z', datatype: 'FP32', shape: [batch, 2], parameters: { binary_data_size: 24 } },
    ])
    expect(maxAbsDiff(floatsOf(tail), expected[1])).toBeLessThanOrEqual(1e-5)
  })

  it('answers gRPC ModelInfer exactly as tfjs does', async () => {
    const response = await inference.call<{
      outputs: { name: string; shape: string[] }[]
      raw_output_contents: Buffer[]
    }>('ModelInfer', {
      model_name: 'layers',
      inputs: [
        { name: 'a', datatype: 'FP32', shape: [batch, 4] },
        { name: 'b', datatype: 'FP32', shape: [batch, 4] },
      ],
      raw_input_contents: [bytesOf(new Float32Array(a)), bytesOf(new Float32Array(b))],
    })
    expect(response.outputs.map((o) => [o.name, o.shape])).toEqual([
      ['y', ['3', '3']],
      ['z', ['3', '2']],
    ])
    expect(maxAbsDiff(floatsOf(response.raw_output_contents[0]), expected[0])).toBeLessThanOrEqual(1e-5)
    expect(maxAbsDiff(floatsOf(response.raw_output_contents[1]), expected[1])).toBeLessThanOrEqual(1e-5)
  })

  it('batches concurrent requests into one run and splits the answers back exactly (two instances)', async () => {
    const rows = Array.from({ length: 24 }, (_, i) => i % batch)
    const results = await Promise.all(
      rows.map((r) =>
        service.infer({
          model: 'graph',
          inputs: [f32('a', [1, 4], row(a, r, 4)), f32('b', [1, 4], row(b, r, 4))],
        }),
      ),
    )
    expect(Math.max(...results.map((r) => r.timing.batchSize))).toBeGreaterThan(1)
    for (const [i, r] of rows.entries()) {
      const y = Array.from(results[i].outputs[0].data as Float32Array)
      expect(maxAbsDiff(y, row(expected[0], r, 3))).toBeLessThanOrEqual(1e-5)
    }
    const rest = await Promise.all(
      rows.map((r) =>
        jsonInfer('layers', [
          { name: 'a', data: row(a, r, 4), shape: [1, 4] },
          { name: 'b', data: row(b, r, 4), shape: [1, 4] },
        ]),
      ),
    )
    for (const [i, r] of rows.entries()) {
      expect(rest[i].statusCode).toBe(200)
      const z = rest[i].json().outputs[1].data as number[]
      expect(maxAbsDiff(z, row(expected[1], r, 2))).toBeLessThanOrEqual(1e-5)
    }
  })

  it('serves INT32 and BOOL tensors (int inputs, int and bool outputs) as tfjs computes them', async () => {
    const ids = [1, -2, 3, 0, 5, -6]
    const [doubled, positive] = await models.reference('ints', {
      ids: { data: ids, shape: [2, 3], dtype: 'int32' },
    })
    const res = await jsonInfer('ints', [{ name: 'ids', data: ids, shape: [2, 3] }], 'INT32')
    expect(res.statusCode, res.body).toBe(200)
    expect(res.json().outputs).toEqual([
      { name: 'doubled', datatype: 'INT32', shape: [2, 3], data: doubled },
      { name: 'positive', datatype: 'BOOL', shape: [2, 3], data: positive.map((v) => v === 1) },
    ])
  })

  it('refuses a wrong datatype with 400 naming the input and what the model takes', async () => {
    const integers = mixInputs().map((i) => ({ ...i, data: i.data.map(Math.round) }))
    const res = await jsonInfer('graph', integers, 'INT32')
    expect(res.statusCode).toBe(400)
    expect(res.json().error).toBe("Input 'a' has datatype INT32; the model expects FP32.")
  })

  it('a corrupt model.json, a missing shard, a truncated shard and an unservable datatype leave the model UNAVAILABLE saying why', () => {
    const reason = (name: string) => {
      const row = service.index().find((r) => r.name === name)
      expect(row?.state, name).toBe('UNAVAILABLE')
      return row?.reason
    }
    const file = (name: string) => join(repo, name, '1', 'model.json')
    expect(reason('corrupt')).toMatch(new RegExp(`^${file('corrupt')} is not valid JSON: `))
    expect(reason('noshard')).toBe(
      `the weight file group1-shard2of2.bin that ${file('noshard')} names is missing`,
    )
    expect(reason('truncated')).toBe(
      `the weight files of ${file('truncated')} hold 100 bytes but its weightsManifest needs 468 (a truncated or mismatched shard?)`,
    )
    expect(reason('complex')).toBe(
      `TensorFlow.js cannot load ${file('complex')}: input 'c' is a complex64 tensor, which helix cannot serve from a TensorFlow.js model (it serves float32, int32, bool and string)`,
    )
  })
})

describe('TensorFlow.js backend, directly', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let models: TfjsModels
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir('helix-tfjs-direct-'))
    models = await buildTfjsModels(dir)
  }, 60_000)
  afterAll(() => cleanup())

  const open = async (file: string, config = {}) => {
    const backend = new TfjsBackend({
      modelPath: file,
      config,
      device: 'cpu',
      label: 'm:1',
      logger: silentLogger,
    })
    await backend.load()
    return backend
  }

  it('keeps the tensors tfjs holds constant across runs (no leak) and frees the model on dispose', async () => {
    const backend = await open(models.files.layers)
    const inputs = () => [
      f32('a', [2, 4], [1, 2, 3, 4, 5, 6, 7, 8]),
      f32('b', [2, 4], [8, 7, 6, 5, 4, 3, 2, 1]),
    ]
    await backend.run(inputs())
    const [before] = await backend.memory()
    // The weights: 2 inputs × (kernel + bias) of three dense layers.
    expect(before.numTensors).toBe(6)
    for (let i = 0; i < 20; i++) await backend.run(inputs())
    expect(await backend.memory()).toEqual([before])
    await backend.dispose()
    await backend.dispose()
    await expect(backend.run(inputs())).rejects.toThrow(
      "Model 'm:1' is not ready: its TensorFlow.js workers are stopped",
    )

    const worker = new TfjsWorker()
    await worker.load(await readTfjsModel(models.files.graph))
    expect((await worker.memory()).numTensors).toBe(7)
    expect(await worker.stop()).toEqual({ numTensors: 0, numBytes: 0 })
    expect(worker.alive).toBe(false)
  })

  it('refuses a tensor of the wrong datatype or an unknown input at the backend, naming it', async () => {
    const backend = await open(models.files.graph)
    try {
      const ints: Tensor = { name: 'a', datatype: 'INT32', shape: [1, 4], data: new Int32Array(4) }
      await expect(backend.run([ints, f32('b', [1, 4], [0, 0, 0, 0])])).rejects.toThrow(
        "input 'a' is INT32 but the model takes FP32",
      )
      await expect(backend.run([f32('c', [1, 4], [0, 0, 0, 0])])).rejects.toThrow(
        "the model has no input 'c'",
      )
      // A shape the graph refuses fails the batch (BACKEND_FAILED) and the instance keeps serving.
      await expect(
        backend.run([f32('a', [1, 3], [0, 0, 0]), f32('b', [1, 4], [0, 0, 0, 0])]),
      ).rejects.toThrow(/shape/)
      const out = await backend.run([f32('a', [1, 4], a4), f32('b', [1, 4], a4)])
      expect(out.map((o) => o.name)).toEqual(['y', 'z'])
    } finally {
      await backend.dispose()
    }
  })

  it('returns only the outputs asked for, in the order asked', async () => {
    for (const file of [models.files.graph, models.files.layers]) {
      const backend = await open(file)
      try {
        const out = await backend.run([f32('a', [1, 4], a4), f32('b', [1, 4], a4)], ['z'])
        expect(out.map((o) => [o.name, o.shape])).toEqual([['z', [1, 2]]])
      } finally {
        await backend.dispose()
      }
    }
  })

  it('a dead worker thread fails its batch with MODEL_NOT_READY and is replaced for the next', async () => {
    const backend = await open(models.files.graph)
    try {
      const slot = (backend as unknown as { slots: { worker: TfjsWorker }[] }).slots[0]
      const first = slot.worker
      const running = backend.run([f32('a', [1, 4], a4), f32('b', [1, 4], a4)])
      await first.stop()
      await expect(running).rejects.toMatchObject({ code: 'MODEL_NOT_READY' })
      const out = await backend.run([f32('a', [1, 4], a4), f32('b', [1, 4], a4)])
      expect(out).toHaveLength(2)
      expect(slot.worker).not.toBe(first)
    } finally {
      await backend.dispose()
    }
  })

  it('a run computes off the event loop: timers and I/O keep running while a wide model computes', async () => {
    const wide = await buildWideModel(dir)
    const backend = await open(wide)
    try {
      expect(backend.describe().computesOffEventLoop).toBe(true)
      let ticks = 0
      let done = false
      const run = backend
        .run([f32('x', [256, 1024], Array.from(seededFloats(256 * 1024, 3)))])
        .finally(() => {
          done = true
        })
      while (!done) {
        await new Promise((r) => setImmediate(r))
        ticks++
      }
      const [out] = await run
      expect(out.shape).toEqual([256, 1024])
      // A run on the event loop would let no tick through until it finished.
      expect(ticks).toBeGreaterThan(10)
    } finally {
      await backend.dispose()
    }
  }, 60_000)

  it('takes shapes from config.yaml where the model has none, and refuses an input it cannot describe', async () => {
    const unknown = join(dir, 'unknown')
    await mkdir(unknown, { recursive: true })
    const json = {
      format: 'graph-model',
      modelTopology: {
        node: [
          { name: 'x', op: 'Placeholder', attr: { dtype: { type: 'DT_FLOAT' } } },
          { name: 'y', op: 'Neg', input: ['x'], attr: { T: { type: 'DT_FLOAT' } } },
        ],
        versions: { producer: 1482 },
      },
      weightsManifest: [],
    }
    await writeFile(join(unknown, 'model.json'), JSON.stringify(json))
    await expect(open(join(unknown, 'model.json'))).rejects.toThrow(
      "input 'x' has no shape in model.json; declare it in config.yaml inputs (name, datatype, dims)",
    )
    const backend = await open(join(unknown, 'model.json'), {
      max_batch_size: 4,
      inputs: [{ name: 'x', datatype: 'FP32', dims: [2] }],
    })
    try {
      expect(backend.describe()).toMatchObject({
        inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 2] }],
        outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 2] }],
      })
      const [y] = await backend.run([f32('x', [1, 2], [1, -2])])
      expect(Array.from(y.data as Float32Array)).toEqual([-1, 2])
    } finally {
      await backend.dispose()
    }
  })

  it('says why tfjs refuses a model: an unknown layer class, an op it cannot run when probing the outputs', async () => {
    const write = async (name: string, json: unknown) => {
      await mkdir(join(dir, name), { recursive: true })
      await writeFile(join(dir, name, 'model.json'), JSON.stringify(json))
      return join(dir, name, 'model.json')
    }
    const layer = await write('unknown-layer', {
      format: 'layers-model',
      modelTopology: {
        class_name: 'Sequential',
        config: { name: 's', layers: [{ class_name: 'NoSuchLayer', config: {} }] },
      },
      weightsManifest: [],
    })
    await expect(open(layer)).rejects.toThrow(
      `TensorFlow.js cannot load ${layer}: Unknown layer: NoSuchLayer.`,
    )
    const op = await write('unknown-op', {
      format: 'graph-model',
      modelTopology: {
        node: [
          {
            name: 'x',
            op: 'Placeholder',
            attr: { shape: { shape: { dim: [{ size: '-1' }] } }, dtype: { type: 'DT_FLOAT' } },
          },
          { name: 'y', op: 'NoSuchOp', input: ['x'] },
        ],
        versions: { producer: 1482 },
      },
      weightsManifest: [],
    })
    await expect(open(op)).rejects.toThrow(
      /^the model's outputs have no shapes in model.json and a run of zeros failed \(.*NoSuchOp.*\); declare them in config.yaml outputs/,
    )
  })

  it('copies of the same model files load in every instance (instances: 2)', async () => {
    const copy = join(dir, 'copy')
    await mkdir(copy, { recursive: true })
    for (const f of ['model.json', 'group1-shard1of2.bin', 'group1-shard2of2.bin'])
      await copyFile(join(models.files.graph, '..', f), join(copy, f))
    const backend = await open(join(copy, 'model.json'), { instances: 2 })
    try {
      expect(backend.describe().instances).toBe(2)
      expect((await backend.memory()).map((m) => m.numTensors)).toEqual([7, 7])
    } finally {
      await backend.dispose()
    }
  })
})

const a4 = [0.5, -1, 2, 0.25]
