import { cp, mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import * as tf from '@tensorflow/tfjs-core'
import '@tensorflow/tfjs-backend-wasm'
import * as tfconv from '@tensorflow/tfjs-converter'
import * as tfl from '@tensorflow/tfjs-layers'
import { stringify } from 'yaml'

/**
 * Real TensorFlow.js models for the tfjs backend's tests, built in the test itself:
 * - `layers`: a Keras-style functional model made with tfjs-layers (two inputs a, b of [batch, 4];
 *   concatenate → dense 8 relu → outputs y = dense 3 and z = dense 2 sigmoid), saved through
 *   tf.io.withSaveHandler to model.json + one weight shard, exactly as model.save('file://…') would;
 * - `graph`: the same maths as a graph model (what tensorflowjs_converter writes from a SavedModel:
 *   a GraphDef with _FusedMatMul nodes, a serving signature naming the inputs a, b and outputs y, z,
 *   weights in two shards), with the layers model's weights;
 * - `frozen`: that graph without a signature (a frozen graph: node names, output shapes unknown);
 * - `ints`: a graph model over INT32 → (INT32, BOOL): doubled = ids * 2, positive = ids > 0.
 * The reference outputs come from tfjs run directly on the in-memory artifacts (no file reading).
 */
export interface TfjsModels {
  dir: string
  /** model.json paths by model. */
  files: Record<'layers' | 'graph' | 'frozen' | 'ints', string>
  /** Runs a built model directly in tfjs (wasm backend in this process): outputs flattened, in order. */
  reference: (
    model: 'layers' | 'graph' | 'frozen' | 'ints',
    inputs: Record<string, { data: number[]; shape: number[]; dtype?: 'float32' | 'int32' }>,
  ) => Promise<number[][]>
}

let backendReady: Promise<void> | undefined

/** The wasm backend in this process (the one helix serves with), once. */
export function tfjsReady(): Promise<void> {
  backendReady ??= (async () => {
    await tf.setBackend('wasm')
    await tf.ready()
  })()
  return backendReady
}

const dim = (...sizes: number[]) => ({ dim: sizes.map((s) => ({ size: String(s) })) })
const constNode = (name: string, dtype: 'DT_FLOAT' | 'DT_INT32', shape: number[]) => ({
  name,
  op: 'Const',
  attr: { value: { tensor: { dtype, tensorShape: dim(...shape) } }, dtype: { type: dtype } },
})
const fused = (name: string, inputs: string[], ops: string[]) => ({
  name,
  op: '_FusedMatMul',
  input: inputs,
  attr: {
    T: { type: 'DT_FLOAT' },
    num_args: { i: '1' },
    fused_ops: { list: { s: ops.map((o) => Buffer.from(o).toString('base64')) } },
    epsilon: { f: 0 },
    transpose_a: { b: false },
    transpose_b: { b: false },
  },
})
const placeholder = (name: string, dtype: string, shape: number[]) => ({
  name,
  op: 'Placeholder',
  attr: { shape: { shape: dim(...shape) }, dtype: { type: dtype } },
})

/** Writes model.json and its shards (weight bytes split over `paths` in equal-ish parts at spec boundaries). */
async function writeModel(
  dir: string,
  json: Record<string, unknown>,
  weightSpecs: tf.io.WeightsManifestEntry[],
  weightData: ArrayBuffer,
  shards = 1,
): Promise<string> {
  await mkdir(dir, { recursive: true })
  const bytes = new Uint8Array(weightData)
  const cut = shards > 1 ? Math.floor(bytes.byteLength / 2 / 4) * 4 : bytes.byteLength
  const parts = shards > 1 ? [bytes.subarray(0, cut), bytes.subarray(cut)] : [bytes]
  const paths = parts.map((_, i) => `group1-shard${i + 1}of${parts.length}.bin`)
  for (const [i, part] of parts.entries()) await writeFile(join(dir, paths[i]), part)
  const path = join(dir, 'model.json')
  await writeFile(path, JSON.stringify({ ...json, weightsManifest: [{ paths, weights: weightSpecs }] }))
  return path
}

function concat(parts: ArrayBufferView[]): ArrayBuffer {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let at = 0
  for (const p of parts) {
    out.set(new Uint8Array(p.buffer, p.byteOffset, p.byteLength), at)
    at += p.byteLength
  }
  return out.buffer
}

/** Builds and saves the test models under dir. */
export async function buildTfjsModels(dir: string): Promise<TfjsModels> {
  await tfjsReady()
  const seeded = (seed: number) => tfl.initializers.glorotUniform({ seed })
  const a = tfl.input({ shape: [4], name: 'a' })
  const b = tfl.input({ shape: [4], name: 'b' })
  const joined = tfl.layers.concatenate({ name: 'joined' }).apply([a, b]) as tfl.SymbolicTensor
  const hidden = tfl.layers
    .dense({
      units: 8,
      activation: 'relu',
      name: 'hidden',
      kernelInitializer: seeded(1),
      biasInitializer: 'ones',
    })
    .apply(joined) as tfl.SymbolicTensor
  const y = tfl.layers
    .dense({ units: 3, name: 'y', kernelInitializer: seeded(2), biasInitializer: 'ones' })
    .apply(hidden) as tfl.SymbolicTensor
  const z = tfl.layers
    .dense({ units: 2, activation: 'sigmoid', name: 'z', kernelInitializer: seeded(3) })
    .apply(hidden) as tfl.SymbolicTensor
  const layersModel = tfl.model({ inputs: [a, b], outputs: [y, z] })
  let saved: tf.io.ModelArtifacts | undefined
  await layersModel.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }
    }),
  )
  const artifacts = saved as tf.io.ModelArtifacts
  const layersSpecs = artifacts.weightSpecs as tf.io.WeightsManifestEntry[]
  const layers = await writeModel(
    join(dir, 'layers'),
    {
      modelTopology: artifacts.modelTopology,
      format: artifacts.format,
      generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy,
    },
    layersSpecs,
    artifacts.weightData as ArrayBuffer,
  )

  // The same weights as graph constants: the layers model's weights by name, plus the concat axis.
  const weights = new Map<string, Float32Array>()
  let offset = 0
  for (const spec of layersSpecs) {
    const count = spec.shape.reduce((n, d) => n * d, 1)
    weights.set(
      spec.name,
      new Float32Array((artifacts.weightData as ArrayBuffer).slice(offset, offset + 4 * count)),
    )
    offset += 4 * count
  }
  const names = ['hidden/kernel', 'hidden/bias', 'y/kernel', 'y/bias', 'z/kernel', 'z/bias']
  const graphSpecs: tf.io.WeightsManifestEntry[] = [
    { name: 'joined/axis', shape: [], dtype: 'int32' },
    ...names.map((name) => ({
      name,
      shape: (layersSpecs.find((s) => s.name === name) as tf.io.WeightsManifestEntry).shape,
      dtype: 'float32' as const,
    })),
  ]
  const graphData = concat([new Int32Array([1]), ...names.map((n) => weights.get(n) as Float32Array)])
  const topology = {
    node: [
      placeholder('a', 'DT_FLOAT', [-1, 4]),
      placeholder('b', 'DT_FLOAT', [-1, 4]),
      constNode('joined/axis', 'DT_INT32', []),
      ...names.map((n) => constNode(n, 'DT_FLOAT', graphSpecs.find((s) => s.name === n)?.shape ?? [])),
      {
        name: 'joined',
        op: 'ConcatV2',
        input: ['a', 'b', 'joined/axis'],
        attr: { N: { i: '2' }, T: { type: 'DT_FLOAT' }, Tidx: { type: 'DT_INT32' } },
      },
      fused('hidden/Relu', ['joined', 'hidden/kernel', 'hidden/bias'], ['BiasAdd', 'Relu']),
      fused('y/BiasAdd', ['hidden/Relu', 'y/kernel', 'y/bias'], ['BiasAdd']),
      fused('z/BiasAdd', ['hidden/Relu', 'z/kernel', 'z/bias'], ['BiasAdd']),
      { name: 'z/Sigmoid', op: 'Sigmoid', input: ['z/BiasAdd'], attr: { T: { type: 'DT_FLOAT' } } },
      { name: 'Identity', op: 'Identity', input: ['y/BiasAdd'], attr: { T: { type: 'DT_FLOAT' } } },
      { name: 'Identity_1', op: 'Identity', input: ['z/Sigmoid'], attr: { T: { type: 'DT_FLOAT' } } },
    ],
    library: {},
    versions: { producer: 1482 },
  }
  const signature = {
    inputs: {
      a: { name: 'a:0', dtype: 'DT_FLOAT', tensorShape: dim(-1, 4) },
      b: { name: 'b:0', dtype: 'DT_FLOAT', tensorShape: dim(-1, 4) },
    },
    outputs: {
      y: { name: 'Identity:0', dtype: 'DT_FLOAT', tensorShape: dim(-1, 3) },
      z: { name: 'Identity_1:0', dtype: 'DT_FLOAT', tensorShape: dim(-1, 2) },
    },
  }
  const converted = { generatedBy: '2.15.0', convertedBy: 'TensorFlow.js Converter v4.22.0' }
  const graph = await writeModel(
    join(dir, 'graph'),
    { format: 'graph-model', ...converted, signature, modelTopology: topology },
    graphSpecs,
    graphData,
    2,
  )
  const frozen = await writeModel(
    join(dir, 'frozen'),
    { format: 'graph-model', ...converted, modelTopology: topology },
    graphSpecs,
    graphData,
  )

  const intsTopology = {
    node: [
      placeholder('ids', 'DT_INT32', [-1, 3]),
      constNode('two', 'DT_INT32', []),
      constNode('zero', 'DT_INT32', []),
      { name: 'doubled', op: 'Mul', input: ['ids', 'two'], attr: { T: { type: 'DT_INT32' } } },
      { name: 'positive', op: 'Greater', input: ['ids', 'zero'], attr: { T: { type: 'DT_INT32' } } },
    ],
    library: {},
    versions: { producer: 1482 },
  }
  const intsSignature = {
    inputs: { ids: { name: 'ids:0', dtype: 'DT_INT32', tensorShape: dim(-1, 3) } },
    outputs: {
      doubled: { name: 'doubled:0', dtype: 'DT_INT32', tensorShape: dim(-1, 3) },
      positive: { name: 'positive:0', dtype: 'DT_BOOL', tensorShape: dim(-1, 3) },
    },
  }
  const intsSpecs: tf.io.WeightsManifestEntry[] = [
    { name: 'two', shape: [], dtype: 'int32' },
    { name: 'zero', shape: [], dtype: 'int32' },
  ]
  const intsData = concat([new Int32Array([2, 0])])
  const ints = await writeModel(
    join(dir, 'ints'),
    { format: 'graph-model', ...converted, signature: intsSignature, modelTopology: intsTopology },
    intsSpecs,
    intsData,
  )

  const inMemory = {
    graph: {
      modelTopology: topology,
      weightSpecs: graphSpecs,
      weightData: graphData,
      format: 'graph-model',
      signature,
    },
    frozen: {
      modelTopology: topology,
      weightSpecs: graphSpecs,
      weightData: graphData,
      format: 'graph-model',
    },
    ints: {
      modelTopology: intsTopology,
      weightSpecs: intsSpecs,
      weightData: intsData,
      format: 'graph-model',
      signature: intsSignature,
    },
  }
  const reference: TfjsModels['reference'] = async (model, inputs) => {
    const tensors = Object.fromEntries(
      Object.entries(inputs).map(([name, i]) => [name, tf.tensor(i.data, i.shape, i.dtype ?? 'float32')]),
    )
    let outputs: tf.Tensor[]
    if (model === 'layers') {
      outputs = layersModel.predictOnBatch([tensors.a, tensors.b]) as tf.Tensor[]
    } else {
      const graphModel = await tfconv.loadGraphModel(tf.io.fromMemory(inMemory[model]))
      const names =
        model === 'ints'
          ? ['doubled', 'positive']
          : model === 'graph'
            ? ['y', 'z']
            : ['Identity', 'Identity_1']
      outputs = graphModel.execute(tensors, names) as tf.Tensor[]
      graphModel.dispose()
    }
    const result = outputs.map((t) => Array.from(t.dataSync() as ArrayLike<number>))
    tf.dispose([...Object.values(tensors), ...outputs])
    return result
  }
  return { dir, files: { layers, graph, frozen, ints }, reference }
}

/** Puts a model.json and its shards into repository/<name>/<version>/ with its config.yaml. */
export async function addTfjsModel(
  repositoryDir: string,
  name: string,
  modelJson: string,
  config: Record<string, unknown> | undefined,
  version = 1,
): Promise<string> {
  const target = join(repositoryDir, name, String(version))
  await mkdir(join(repositoryDir, name), { recursive: true })
  await cp(join(modelJson, '..'), target, { recursive: true })
  if (config) await writeFile(join(repositoryDir, name, 'config.yaml'), stringify(config))
  return join(target, 'model.json')
}

/**
 * A layers model wide enough that one batch takes a while (1024 → 1024 × 3 dense, ~3M weights; a
 * batch of 256 is ~0.8 GMAC): what shows a run computing off the event loop.
 */
export async function buildWideModel(dir: string): Promise<string> {
  await tfjsReady()
  const input = tfl.input({ shape: [1024], name: 'x' })
  let h = input
  for (let i = 0; i < 3; i++)
    h = tfl.layers.dense({ units: 1024, activation: 'relu', name: `d${i}` }).apply(h) as tfl.SymbolicTensor
  const model = tfl.model({ inputs: input, outputs: h })
  let saved: tf.io.ModelArtifacts | undefined
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }
    }),
  )
  model.dispose()
  const artifacts = saved as tf.io.ModelArtifacts
  return writeModel(
    join(dir, 'wide'),
    { modelTopology: artifacts.modelTopology, format: artifacts.format },
    artifacts.weightSpecs as tf.io.WeightsManifestEntry[],
    artifacts.weightData as ArrayBuffer,
  )
}
