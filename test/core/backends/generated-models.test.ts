import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDir } from '../../helpers/cli.js'
import {
  addModel,
  CLS_MODEL_PATH,
  corruptModel,
  fixedShapeModel,
  IDENTITY_DATATYPES,
  identityModel,
  matmulChainModel,
  multiIoModel,
  recurrentModel,
  scaleModel,
  unsupportedOpModel,
  writeOnnx,
} from '../../helpers/onnx-models.js'

// The generated models are the ground the rest of the suite stands on: each must load in the real
// onnxruntime and compute what its doc comment says.
describe('generated ONNX test models', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterAll(() => cleanup())

  const load = async (name: string, bytes: Uint8Array) =>
    ort.InferenceSession.create(await writeOnnx(join(dir, `${name}.onnx`), bytes))

  it('addModel adds', async () => {
    const s = await load('add', addModel())
    const a = new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]), [2, 4])
    const b = new ort.Tensor('float32', Float32Array.from([1, 1, 1, 1, 2, 2, 2, 2]), [2, 4])
    const out = await s.run({ a, b })
    expect(Array.from(out.sum.data as Float32Array)).toEqual([2, 3, 4, 5, 7, 8, 9, 10])
    expect(s.inputMetadata.map((m) => (m.isTensor ? m.shape : []))).toEqual([
      ['batch', 4],
      ['batch', 4],
    ])
  })

  it('scaleModel scales', async () => {
    const s = await load('scale', scaleModel(3))
    const out = await s.run({ x: new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [1, 4]) })
    expect(Array.from(out.y.data as Float32Array)).toEqual([3, 6, 9, 12])
  })

  it('multiIoModel handles int64 and a scalar', async () => {
    const s = await load('multi', multiIoModel())
    const out = await s.run({
      x: new ort.Tensor('float32', Float32Array.from([1, 2, 3]), [1, 3]),
      ids: new ort.Tensor('int64', BigInt64Array.from([5n, 9n]), [1, 2]),
      scale: new ort.Tensor('float32', Float32Array.from([2]), []),
    })
    expect(Array.from(out.scaled.data as Float32Array)).toEqual([2, 4, 6])
    expect(Array.from(out.next_ids.data as BigInt64Array)).toEqual([6n, 10n])
  })

  it('recurrentModel returns output and a new state', async () => {
    const s = await load('rec', recurrentModel())
    const out = await s.run({
      x: new ort.Tensor('float32', Float32Array.from([1, 0, 0, 0]), [1, 4]),
      state: new ort.Tensor('float32', Float32Array.from([0, 1, 0, 0]), [1, 4]),
    })
    expect(Array.from(out.new_state.data as Float32Array)).toEqual([1, 1, 0, 0])
    expect((out.output.data as Float32Array)[0]).toBeCloseTo(Math.tanh(1), 6)
  })

  it.each(IDENTITY_DATATYPES)('identityModel(%s) loads and echoes', async (datatype) => {
    const s = await load(`id_${datatype}`, identityModel(datatype))
    const type = (
      {
        FP32: 'float32',
        UINT8: 'uint8',
        INT8: 'int8',
        UINT16: 'uint16',
        INT16: 'int16',
        INT32: 'int32',
        INT64: 'int64',
        BYTES: 'string',
        BOOL: 'bool',
        FP16: 'float16',
        FP64: 'float64',
        UINT32: 'uint32',
        UINT64: 'uint64',
      } as const
    )[datatype as 'FP32'] as string
    const data =
      type === 'string'
        ? ['a', 'bc', '']
        : type === 'int64'
          ? BigInt64Array.from([1n, 2n, 3n])
          : type === 'uint64'
            ? BigUint64Array.from([1n, 2n, 3n])
            : type === 'bool'
              ? Uint8Array.from([1, 0, 1])
              : type === 'float16'
                ? Uint16Array.from([0x3c00, 0, 0x4000])
                : [1, 2, 3]
    const tensor = new ort.Tensor(type as 'float32', data as number[] as unknown as Float32Array, [1, 3])
    const out = await s.run({ input: tensor })
    expect(out.output.type).toBe(type)
    expect(Array.from(out.output.data as ArrayLike<unknown>)).toEqual(
      Array.from(tensor.data as ArrayLike<unknown>),
    )
  })

  it('fixedShapeModel has a fixed first dim', async () => {
    const s = await load('fixed', fixedShapeModel())
    expect(s.inputMetadata[0]).toMatchObject({ shape: [2, 4] })
  })

  it('matmulChainModel keeps ones as ones', async () => {
    const s = await load('mm', matmulChainModel(8, 3))
    const out = await s.run({ x: new ort.Tensor('float32', new Float32Array(16).fill(1), [2, 8]) })
    for (const v of out.y.data as Float32Array) expect(v).toBeCloseTo(1, 5)
  })

  it('unsupported and corrupt models fail to load', async () => {
    await expect(load('bad_op', unsupportedOpModel())).rejects.toThrow(/NoSuchOperator/)
    await expect(load('corrupt', corruptModel())).rejects.toThrow()
  })

  it('the PP-OCR cls model is present', async () => {
    const s = await ort.InferenceSession.create(CLS_MODEL_PATH)
    expect(s.inputNames).toEqual(['x'])
    expect(s.outputNames).toEqual(['softmax_0.tmp_0'])
  })
})
