// A tiny real ONNX model (y = x * 2, x FP32 [batch, 4]) built with onnx-proto, so the full-stack
// benchmarks measure the serving stack rather than the math.
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import onnxProto from 'onnx-proto'

const { onnx } = onnxProto

function valueInfo(name, dims) {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: 1,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  })
}

/** Writes the model to a fresh temp directory and returns the .onnx path. */
export async function writeTinyModel() {
  const graph = {
    name: 'tiny',
    input: [valueInfo('x', ['batch', 4])],
    output: [valueInfo('y', ['batch', 4])],
    initializer: [onnx.TensorProto.create({ name: 'k', dataType: 1, dims: [1], floatData: [2] })],
    node: [onnx.NodeProto.create({ opType: 'Mul', input: ['x', 'k'], output: ['y'], name: 'mul' })],
  }
  return writeModel(graph)
}

/** Writes an opset-13 model around `graph` to a fresh temp directory; returns the .onnx path. */
async function writeModel(graph) {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'helix-bench',
    opsetImport: [{ domain: '', version: 13 }],
    graph,
  })
  const dir = await mkdtemp(join(tmpdir(), 'helix-bench-model-'))
  const file = join(dir, `${graph.name}.onnx`)
  await writeFile(file, onnx.ModelProto.encode(model).finish())
  return file
}

/**
 * A model with the PP-OCR cls model's input (x FP32 [batch, 3, 48, 192]) that does almost no math
 * (y = mean of each channel, [batch, 3]): served, it measures what serving one such item costs
 * beyond the model itself (HTTP, 110 KB of body, batching, the worker hand-off).
 */
export async function writeNullClsModel() {
  const graph = {
    name: 'null-cls',
    input: [valueInfo('x', ['batch', 3, 48, 192])],
    output: [valueInfo('y', ['batch', 3])],
    node: [
      onnx.NodeProto.create({
        opType: 'ReduceMean',
        input: ['x'],
        output: ['y'],
        name: 'mean',
        attribute: [
          { name: 'axes', type: onnx.AttributeProto.AttributeType.INTS, ints: [2, 3] },
          { name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 },
        ],
      }),
    ],
  }
  return writeModel(graph)
}

/**
 * A small MLP, distinct per `seed` (x FP32 [batch, 16] → MatMul 16×32 → Relu → MatMul 32×4 → y
 * [batch, 4]), as encoded bytes: the many-models bench fills a repository with hundreds of them.
 */
export function mlpModel(seed) {
  let s = (seed + 1) * 2654435761
  const random = () => {
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648 - 0.5
  }
  const weights = (name, rows, cols) =>
    onnx.TensorProto.create({
      name,
      dataType: 1,
      dims: [rows, cols],
      floatData: Array.from({ length: rows * cols }, random),
    })
  const graph = {
    name: `mlp_${seed}`,
    input: [valueInfo('x', ['batch', 16])],
    output: [valueInfo('y', ['batch', 4])],
    initializer: [weights('w1', 16, 32), weights('w2', 32, 4)],
    node: [
      onnx.NodeProto.create({ opType: 'MatMul', input: ['x', 'w1'], output: ['h'], name: 'fc1' }),
      onnx.NodeProto.create({ opType: 'Relu', input: ['h'], output: ['r'], name: 'relu' }),
      onnx.NodeProto.create({ opType: 'MatMul', input: ['r', 'w2'], output: ['y'], name: 'fc2' }),
    ],
  }
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'helix-bench',
    opsetImport: [{ domain: '', version: 13 }],
    graph,
  })
  return onnx.ModelProto.encode(model).finish()
}
