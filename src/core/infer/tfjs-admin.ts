import type { Stats } from 'node:fs'
import { existsSync } from 'node:fs'
import { copyFile, mkdir, readFile } from 'node:fs/promises'
import { dirname, extname, join } from 'node:path'
import { firstLine, UserError } from '../../shared/errors.js'
import { BackendLoadError } from '../backends/onnx-backend.js'
import { TfjsBackend } from '../backends/tfjs/tfjs-backend.js'
import { parseModelJson, TFJS_MODEL_FILE } from '../backends/tfjs/tfjs-files.js'
import { silentLogger } from '../logger.js'
import type { ModelConfig } from './model-config.js'
import type { TensorSpec } from './types.js'
import { warmupRequests } from './warmup.js'

/**
 * The model.json a `helix models add` source names: the file itself (any name ending in .json), or
 * model.json in the folder given; undefined when the source is no TensorFlow.js model.
 */
export function tfjsSource(path: string, info: Stats | undefined): string | undefined {
  if (info?.isFile() && extname(path).toLowerCase() === '.json') return path
  if (info?.isDirectory() && existsSync(join(path, TFJS_MODEL_FILE))) return join(path, TFJS_MODEL_FILE)
  return undefined
}

/**
 * Loads a TensorFlow.js model as the daemon would (a tfjs worker thread on the CPU, config.yaml
 * filling what the model does not say) and runs the warmup through it; returns the signature.
 */
export async function validateTfjsModel(
  path: string,
  config: ModelConfig,
): Promise<{ inputs: TensorSpec[]; outputs: TensorSpec[] }> {
  const backend = new TfjsBackend({
    modelPath: path,
    config,
    device: 'cpu',
    label: path,
    logger: silentLogger,
  })
  try {
    await backend.load()
    const { inputs, outputs } = backend.describe()
    for (const sample of warmupRequests(inputs, config)) await backend.run(sample)
    return { inputs, outputs }
  } catch (err) {
    const reason = err instanceof BackendLoadError ? err.reason : firstLine((err as Error).message)
    throw new UserError('MODEL_INVALID', `TensorFlow.js cannot serve ${path}: ${reason}`, {
      hint: 'Give a model.json written by tensorflowjs_converter or model.save() with its weight shards beside it; docs/getting-started.md (TensorFlow models) shows converting SavedModel, Keras and TFLite models.',
      cause: err,
    })
  } finally {
    await backend.dispose()
  }
}

/** Copies model.json (as model.json, whatever its name was) and the weight shards it names into `target`. */
export async function copyTfjsModel(source: string, target: string): Promise<void> {
  const { weightFiles } = parseModelJson(await readFile(source, 'utf8'), source)
  await mkdir(target, { recursive: true })
  await copyFile(source, join(target, TFJS_MODEL_FILE))
  for (const file of weightFiles) {
    await mkdir(dirname(join(target, file)), { recursive: true })
    await copyFile(join(dirname(source), file), join(target, file))
  }
}
