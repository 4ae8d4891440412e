import { readFile, stat } from 'node:fs/promises'
import { dirname, isAbsolute, join, normalize, sep } from 'node:path'
import type { io } from '@tensorflow/tfjs-core'

/** The file a TensorFlow.js model is saved as; its weight shards lie beside it. */
export const TFJS_MODEL_FILE = 'model.json'

/** The two kinds of model.json: a converted TensorFlow graph, or a Keras-style layers model. */
export type TfjsModelKind = 'graph' | 'layers'

/** A model.json with its weights read, ready to hand to tfjs (tf.io.fromMemory in the worker). */
export interface TfjsModelFiles {
  kind: TfjsModelKind
  artifacts: io.ModelArtifacts
  /** The weight shards, relative to model.json's folder, in manifest order. */
  weightFiles: string[]
}

/** A model.json or weight shard tfjs cannot load; the message says which file and why. */
export class TfjsModelError extends Error {
  override name = 'TfjsModelError'
}

/** Bytes per element of each weight dtype as stored in the shards (string weights vary). */
const WEIGHT_BYTES: Record<string, number> = {
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  float16: 2,
  uint8: 1,
  uint16: 2,
}

/** The shard bytes a weights manifest needs; undefined when it has string weights (variable length). */
export function manifestBytes(weights: readonly io.WeightsManifestEntry[]): number | undefined {
  let total = 0
  for (const w of weights) {
    const stored = w.quantization?.dtype ?? w.dtype
    const size = WEIGHT_BYTES[stored]
    if (size === undefined) return undefined
    total += size * w.shape.reduce((n, d) => n * d, 1)
  }
  return total
}

function kindOf(json: io.ModelJSON, path: string): TfjsModelKind {
  if (json.format === 'graph-model') return 'graph'
  if (json.format === 'layers-model') return 'layers'
  const topology = json.modelTopology as Record<string, unknown> | undefined
  // Older files carry no format: a GraphDef has nodes, a Keras topology a class name or model_config.
  if (topology && Array.isArray(topology.node)) return 'graph'
  if (topology && (typeof topology.class_name === 'string' || topology.model_config)) return 'layers'
  throw new TfjsModelError(
    `${path} is neither a TensorFlow.js graph model nor a layers model (format ${JSON.stringify(json.format ?? null)}, no recognisable modelTopology)`,
  )
}

/** A manifest path as a file inside the model's folder; refuses absolute paths and '..'. */
function shardPath(relative: string, path: string): string {
  const clean = normalize(relative)
  if (isAbsolute(relative) || clean === '..' || clean.startsWith(`..${sep}`)) {
    throw new TfjsModelError(`${path} names the weight file '${relative}' outside its folder`)
  }
  return clean
}

/** Parses model.json's text and lists its weight shards, without reading them. */
export function parseModelJson(
  text: string,
  path: string,
): { json: io.ModelJSON; kind: TfjsModelKind; weightFiles: string[] } {
  let json: io.ModelJSON
  try {
    json = JSON.parse(text) as io.ModelJSON
  } catch (err) {
    throw new TfjsModelError(`${path} is not valid JSON: ${(err as Error).message}`)
  }
  if (
    typeof json !== 'object' ||
    json === null ||
    typeof json.modelTopology !== 'object' ||
    json.modelTopology === null
  ) {
    throw new TfjsModelError(`${path} has no modelTopology: it is not a TensorFlow.js model.json`)
  }
  const kind = kindOf(json, path)
  const manifest = json.weightsManifest ?? []
  if (
    !Array.isArray(manifest) ||
    !manifest.every((g) => Array.isArray(g?.paths) && Array.isArray(g?.weights))
  ) {
    throw new TfjsModelError(`${path} has a malformed weightsManifest (each group needs paths and weights)`)
  }
  const weightFiles = manifest.flatMap((g) => g.paths.map((p) => shardPath(p, path)))
  return { json, kind, weightFiles }
}

/**
 * Reads a model.json and its weight shards from disk (the IOHandler tfjs's own file loaders would
 * be, without fetch): every shard named in the manifest must exist, and together they must hold
 * exactly the bytes the manifest's weights need, so a truncated or mismatched shard is named here
 * rather than failing later as wrong numbers.
 */
export async function readTfjsModel(path: string): Promise<TfjsModelFiles> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new TfjsModelError(`cannot read ${path}: ${(err as Error).message}`)
  }
  const { json, kind, weightFiles } = parseModelJson(text, path)
  const dir = dirname(path)
  const shards = await Promise.all(
    weightFiles.map((file) =>
      readFile(join(dir, file)).catch((err: NodeJS.ErrnoException) => {
        throw new TfjsModelError(
          err.code === 'ENOENT'
            ? `the weight file ${file} that ${path} names is missing`
            : `cannot read the weight file ${file}: ${err.message}`,
        )
      }),
    ),
  )
  const weightSpecs = (json.weightsManifest ?? []).flatMap((g) => g.weights)
  const held = shards.reduce((n, s) => n + s.byteLength, 0)
  const needed = manifestBytes(weightSpecs)
  if (needed !== undefined && needed !== held) {
    throw new TfjsModelError(
      `the weight files of ${path} hold ${held} bytes but its weightsManifest needs ${needed} (a truncated or mismatched shard?)`,
    )
  }
  const weightData = new Uint8Array(held)
  let offset = 0
  for (const shard of shards) {
    weightData.set(shard, offset)
    offset += shard.byteLength
  }
  const artifacts: io.ModelArtifacts = {
    modelTopology: json.modelTopology,
    format: json.format,
    generatedBy: json.generatedBy,
    convertedBy: json.convertedBy,
    weightSpecs,
    weightData: weightData.buffer,
    ...(json.signature ? { signature: json.signature } : {}),
    ...(json.userDefinedMetadata ? { userDefinedMetadata: json.userDefinedMetadata } : {}),
    ...(json.modelInitializer ? { modelInitializer: json.modelInitializer } : {}),
    ...(json.initializerSignature ? { initializerSignature: json.initializerSignature } : {}),
    ...(json.trainingConfig ? { trainingConfig: json.trainingConfig } : {}),
  }
  return { kind, artifacts, weightFiles }
}

/** An IOHandler that loads a model.json and its shards from disk, for tf.loadLayersModel / tf.loadGraphModel. */
export function tfjsFileHandler(path: string): io.IOHandler {
  return { load: async () => (await readTfjsModel(path)).artifacts }
}

/**
 * The weight shards' total size and what identifies them on disk (size, mtime, inode of each), for
 * the repository's memory estimate and reload fingerprint: model.json alone is a few kB and would
 * not change when only a shard is replaced. Unreadable files count as absent (loading names them).
 */
export async function tfjsShardStats(path: string): Promise<{ bytes: number; stamp: string }> {
  const text = await readFile(path, 'utf8').catch(() => undefined)
  let files: string[] = []
  try {
    if (text !== undefined) files = parseModelJson(text, path).weightFiles
  } catch {
    // A broken model.json fails when it loads, with the reason.
  }
  const stats = await Promise.all(files.map((f) => stat(join(dirname(path), f)).catch(() => undefined)))
  return {
    bytes: stats.reduce((n, s) => n + (s?.size ?? 0), 0),
    stamp: stats.map((s) => (s ? `${s.size}:${s.mtimeMs}:${s.ino}` : '-')).join(','),
  }
}
