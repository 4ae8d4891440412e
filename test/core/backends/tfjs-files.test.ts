import { mkdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { formatOf } from '../../../src/core/backends/registry.js'
import {
  manifestBytes,
  parseModelJson,
  readTfjsModel,
  TfjsModelError,
  tfjsFileHandler,
  tfjsShardStats,
} from '../../../src/core/backends/tfjs/tfjs-files.js'
import { modelFile, readRepositoryModel, versionFile } from '../../../src/core/infer/repository.js'
import { tempDir } from '../../helpers/cli.js'

const graph = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ modelTopology: { node: [] }, weightsManifest: [], ...extra })

describe('TensorFlow.js model files (model.json and its shards)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterAll(() => cleanup())

  it('tells graph and layers models apart by format, or by topology in files without one', () => {
    expect(parseModelJson(graph({ format: 'graph-model' }), 'm').kind).toBe('graph')
    expect(parseModelJson(graph(), 'm').kind).toBe('graph')
    const layers = (topology: unknown, format?: string) =>
      parseModelJson(JSON.stringify({ modelTopology: topology, weightsManifest: [], format }), 'm').kind
    expect(layers({ class_name: 'Sequential' }, 'layers-model')).toBe('layers')
    expect(layers({ class_name: 'Sequential' })).toBe('layers')
    expect(layers({ model_config: {}, keras_version: '2.1' })).toBe('layers')
    expect(() => layers({ something: 1 })).toThrow(
      'm is neither a TensorFlow.js graph model nor a layers model (format null, no recognisable modelTopology)',
    )
  })

  it('refuses what is not a model.json: bad JSON, no topology, a malformed manifest, shards outside the folder', () => {
    expect(() => parseModelJson('{', 'm')).toThrow(TfjsModelError)
    expect(() => parseModelJson('[]', 'm')).toThrow(
      'm has no modelTopology: it is not a TensorFlow.js model.json',
    )
    expect(() => parseModelJson(graph({ weightsManifest: [{ paths: 'a.bin' }] }), 'm')).toThrow(
      'm has a malformed weightsManifest (each group needs paths and weights)',
    )
    for (const path of ['../secret.bin', '/etc/passwd', 'a/../../b.bin']) {
      expect(() => parseModelJson(graph({ weightsManifest: [{ paths: [path], weights: [] }] }), 'm')).toThrow(
        `m names the weight file '${path}' outside its folder`,
      )
    }
    expect(
      parseModelJson(graph({ weightsManifest: [{ paths: ['w/a.bin', './b.bin'], weights: [] }] }), 'm')
        .weightFiles,
    ).toEqual(['w/a.bin', 'b.bin'])
  })

  it('counts the bytes a manifest needs, quantized weights by their stored dtype; string weights cannot be counted', () => {
    expect(
      manifestBytes([
        { name: 'k', shape: [2, 3], dtype: 'float32' },
        { name: 'q', shape: [4], dtype: 'float32', quantization: { dtype: 'uint8', scale: 1, min: 0 } },
        { name: 'h', shape: [2], dtype: 'float32', quantization: { dtype: 'float16' } },
        { name: 'm', shape: [3], dtype: 'bool' },
        { name: 's', shape: [], dtype: 'int32' },
      ]),
    ).toBe(24 + 4 + 4 + 3 + 4)
    expect(manifestBytes([{ name: 's', shape: [2], dtype: 'string' }])).toBeUndefined()
  })

  it('reads shards in subfolders into one buffer, through an IOHandler, and stats them for the repository', async () => {
    const model = join(dir, 'sub')
    await mkdir(join(model, 'w'), { recursive: true })
    await writeFile(join(model, 'w', 'one.bin'), Buffer.from(new Float32Array([1, 2]).buffer))
    await writeFile(join(model, 'two.bin'), Buffer.from(new Float32Array([3]).buffer))
    const weights = [
      { name: 'a', shape: [2], dtype: 'float32' },
      { name: 'b', shape: [1], dtype: 'float32' },
    ]
    await writeFile(
      join(model, 'model.json'),
      graph({
        signature: { inputs: {} },
        userDefinedMetadata: { x: 1 },
        weightsManifest: [{ paths: ['w/one.bin', 'two.bin'], weights }],
      }),
    )
    const artifacts = await tfjsFileHandler(join(model, 'model.json')).load?.()
    expect(Array.from(new Float32Array(artifacts?.weightData as ArrayBuffer))).toEqual([1, 2, 3])
    expect(artifacts).toMatchObject({
      weightSpecs: weights,
      signature: { inputs: {} },
      userDefinedMetadata: { x: 1 },
    })
    const stats = await tfjsShardStats(join(model, 'model.json'))
    expect(stats.bytes).toBe(12)
    expect(stats.stamp.split(',')).toHaveLength(2)
    expect(await tfjsShardStats(join(dir, 'none.json'))).toEqual({ bytes: 0, stamp: '' })
    await expect(readTfjsModel(join(dir, 'none.json'))).rejects.toThrow(
      `cannot read ${join(dir, 'none.json')}`,
    )
  })

  it('model.json is the tfjs format in the registry (model.onnx and model.pt stay theirs)', () => {
    expect(formatOf('/r/m/1/model.json')).toBe('tfjs')
    expect(formatOf('/r/m/1/model.onnx')).toBe('onnx')
    expect(formatOf('/r/m/1/model.pt')).toBe('pytorch')
    expect(formatOf('/r/m/1/config.json')).toBeUndefined()
  })

  it('a version holding model.json is found, sized with its shards, and fingerprinted by them too', async () => {
    const version = join(dir, 'repo', 'm', '1')
    await mkdir(version, { recursive: true })
    const weights = [{ name: 'a', shape: [4], dtype: 'float32' }]
    await writeFile(join(version, 'model.json'), graph({ weightsManifest: [{ paths: ['w.bin'], weights }] }))
    await writeFile(join(version, 'w.bin'), Buffer.alloc(16))
    const model = await readRepositoryModel(join(dir, 'repo'), 'm')
    if (!model) throw new Error('model not found')
    expect(modelFile(model, 1)).toBe(join(version, 'model.json'))
    const before = await versionFile(model, 1)
    expect(before?.size).toBe((await stat(join(version, 'model.json'))).size + 16)
    await writeFile(join(version, 'w.bin'), Buffer.alloc(32))
    const after = await versionFile(model, 1)
    expect(after?.size).toBe((before?.size ?? 0) + 16)
    expect(after?.fingerprint).not.toBe(before?.fingerprint)
  })
})
