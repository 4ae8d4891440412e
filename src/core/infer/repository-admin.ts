import { randomBytes } from 'node:crypto'
import { copyFile, cp, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { extname, join, relative, resolve } from 'node:path'
import * as ort from 'onnxruntime-node'
import { firstLine, UserError } from '../../shared/errors.js'
import { BackendLoadError } from '../backends/onnx-backend.js'
import { specFromMetadata } from '../backends/onnx-tensors.js'
import { PytorchBackend, type PytorchSettings } from '../backends/pytorch/pytorch-backend.js'
import { TFJS_MODEL_FILE } from '../backends/tfjs/tfjs-files.js'
import { isTextModelDir, TEXT_MODEL_FILE, TOKENIZER_FILE } from '../generate/hf-folder.js'
import { TextBackend } from '../generate/text-backend.js'
import { GpuReservations } from '../gpu/placement.js'
import { silentLogger } from '../logger.js'
import { type ModelConfig, ModelConfigError, parseModelConfig } from './model-config.js'
import { CONFIG_FILE, MODEL_FILE, MODEL_NAME_PATTERN, readRepositoryModel } from './repository.js'
import { copyTfjsModel, tfjsSource, validateTfjsModel } from './tfjs-admin.js'
import type { TensorSpec } from './types.js'
import { warmupRequests } from './warmup.js'

export interface AddedModel {
  name: string
  version: string
  path: string
  inputs: TensorSpec[]
  outputs: TensorSpec[]
  /** A text model's task (embeddings, chat, text-classification). */
  task?: string
}

export interface RemovedModel {
  name: string
  /** The versions removed (every one when the whole model was removed). */
  versions: string[]
}

function checkName(name: string): void {
  if (!MODEL_NAME_PATTERN.test(name)) {
    throw new UserError('INVALID_MODEL_NAME', `'${name}' is not a valid model name.`, {
      hint: 'Use letters, digits, dots, dashes and underscores, starting with a letter or digit (at most 128).',
    })
  }
}

/** Opens the model with onnxruntime on the CPU to prove it loads; returns its signature. */
export async function validateOnnxFile(
  path: string,
): Promise<{ inputs: TensorSpec[]; outputs: TensorSpec[] }> {
  let session: ort.InferenceSession
  try {
    session = await ort.InferenceSession.create(path, { executionProviders: ['cpu'], logSeverityLevel: 3 })
  } catch (err) {
    throw new UserError(
      'MODEL_INVALID',
      `onnxruntime cannot load ${path}: ${firstLine((err as Error).message)}`,
      {
        hint: 'Check that the file is an ONNX model (opset supported by onnxruntime 1.30) and not truncated.',
        cause: err,
      },
    )
  }
  try {
    return {
      inputs: session.inputMetadata.map(specFromMetadata),
      outputs: session.outputMetadata.map(specFromMetadata),
    }
  } catch (err) {
    throw new UserError('MODEL_INVALID', `${path} cannot be served: ${(err as Error).message}`, {
      hint: 'helix serves models whose inputs and outputs are tensors of KServe datatypes.',
    })
  } finally {
    await session.release()
  }
}

/**
 * Loads a TorchScript file in the PyTorch backend's worker on the CPU with the model's config.yaml
 * (which names its inputs and outputs) and runs the warmup through it; returns the signature.
 */
export async function validateTorchScriptFile(
  path: string,
  config: ModelConfig,
  settings: PytorchSettings = {},
): Promise<{ inputs: TensorSpec[]; outputs: TensorSpec[] }> {
  const backend = new PytorchBackend({
    modelPath: path,
    config,
    device: 'cpu',
    settings,
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
    throw new UserError('MODEL_INVALID', `PyTorch cannot serve ${path}: ${reason}`, {
      hint: 'Check the TorchScript file (torch.jit.save) and that config.yaml declares its inputs and outputs (name, datatype, dims) in forward() order.',
      cause: err,
    })
  } finally {
    await backend.dispose()
  }
}

/** The config.yaml to validate against: --config's file, else the model's own, else none. */
async function configFor(
  repositoryDir: string,
  name: string,
  configPath: string | undefined,
): Promise<{ text: string | undefined; config: ModelConfig }> {
  const path = configPath ? resolve(configPath) : join(repositoryDir, name, CONFIG_FILE)
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT' && !configPath) return undefined
    throw new UserError('MODEL_INVALID', `Cannot read ${path}: ${err.message}`, {
      hint: 'Give the path of the model config.yaml.',
    })
  })
  try {
    return { text, config: text === undefined ? {} : parseModelConfig(text, path) }
  } catch (err) {
    if (!(err instanceof ModelConfigError)) throw err
    throw new UserError('MODEL_INVALID', err.message, {
      hint: 'See the config.yaml keys in docs/getting-started.md (Your first model).',
    })
  }
}

/**
 * Loads a Hugging Face–format folder as the daemon would (tokenizer, chat template, graph, task) on
 * the CPU; returns the graph's signature and the task.
 */
export async function validateTextFolder(
  dir: string,
  config: ModelConfig,
): Promise<{ inputs: TensorSpec[]; outputs: TensorSpec[]; task: string }> {
  const backend = new TextBackend({
    modelPath: join(dir, TEXT_MODEL_FILE),
    config,
    device: 'cpu',
    label: dir,
    logger: silentLogger,
    discoverGpus: async () => ({ gpus: [] }),
    reservations: new GpuReservations(),
  })
  try {
    await backend.load()
    const { inputs, outputs } = backend.describe()
    return { inputs, outputs, task: backend.text?.info.task ?? 'unknown' }
  } catch (err) {
    const reason = err instanceof BackendLoadError ? err.reason : firstLine((err as Error).message)
    throw new UserError('MODEL_INVALID', `helix cannot serve the text model in ${dir}: ${reason}`, {
      hint: 'Export it with Optimum or transformers.js (onnx/model.onnx with past_key_values for chat, last_hidden_state for embeddings), or set text.task in config.yaml.',
      cause: err,
    })
  } finally {
    await backend.dispose()
  }
}

/**
 * Copies a text-model folder: its JSON and tokenizer files, sentence-transformers' module folders,
 * and onnx/model.onnx with its external data; other ONNX variants (fp16, quantized) stay behind.
 */
async function copyTextFolder(source: string, target: string): Promise<void> {
  await cp(source, target, {
    recursive: true,
    filter: (path) => {
      const inOnnx = relative(join(source, 'onnx'), path)
      if (inOnnx.startsWith('..') || inOnnx === '') return true
      return inOnnx === 'model.onnx' || inOnnx.startsWith('model.onnx_data')
    },
  })
}

/**
 * Copies a model file into the repository as <name>/<version>/model.onnx, after onnxruntime has
 * loaded it (a .pt file: model.pt, after the PyTorch worker has loaded it and run the warmup; a
 * TensorFlow.js model.json: model.json and its weight shards, after tfjs has loaded it and run the warmup).
 * With a config file, it becomes the model's config.yaml. All or nothing: the file goes to a hidden temp directory first, fsynced, and the
 * directory is renamed into place; on any failure nothing is left behind.
 */
export async function addModel(
  repositoryDir: string,
  name: string,
  source: string,
  options: { version?: number; config?: string; pytorch?: PytorchSettings } = {},
): Promise<AddedModel> {
  checkName(name)
  const sourcePath = resolve(source)
  const info = await stat(sourcePath).catch(() => undefined)
  // A TensorFlow.js model.json, or a folder holding one (a text-model folder is checked first).
  const tfjs = info?.isDirectory() && isTextModelDir(sourcePath) ? undefined : tfjsSource(sourcePath, info)
  const folder = info?.isDirectory() === true && !tfjs
  if (folder && !isTextModelDir(sourcePath)) {
    throw new UserError(
      'MODEL_INVALID',
      `${sourcePath} is neither a Hugging Face–format ONNX folder nor a TensorFlow.js model folder.`,
      {
        hint: `A text model folder holds config.json, ${TOKENIZER_FILE}, tokenizer_config.json and ${TEXT_MODEL_FILE} (an Optimum or transformers.js export); a TensorFlow.js folder holds ${TFJS_MODEL_FILE} and its weight shards.`,
      },
    )
  }
  if (!folder && !tfjs && !info?.isFile()) {
    throw new UserError('MODEL_FILE_NOT_FOUND', `No model file at ${sourcePath}.`, {
      hint: 'Give the path of an .onnx file, a TorchScript .pt file, a TensorFlow.js model.json (or its folder), or a Hugging Face–format ONNX folder.',
    })
  }
  const torch = !folder && extname(sourcePath).toLowerCase() === '.pt'
  const modelFileName = tfjs ? TFJS_MODEL_FILE : folder ? TEXT_MODEL_FILE : torch ? 'model.pt' : MODEL_FILE
  const { text: configText, config } = await configFor(repositoryDir, name, options.config)
  const signature = tfjs
    ? await validateTfjsModel(tfjs, config)
    : folder
      ? await validateTextFolder(sourcePath, config)
      : torch
        ? await validateTorchScriptFile(sourcePath, config, options.pytorch)
        : await validateOnnxFile(sourcePath)
  const existing = await readRepositoryModel(repositoryDir, name)
  const version = options.version ?? Math.max(0, ...(existing?.versions ?? [])) + 1
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new UserError('INVALID_VERSION', `Version ${version} is not a positive integer.`, {
      hint: 'Versions are 1, 2, 3…',
    })
  }
  if (existing?.versions.includes(version)) {
    throw new UserError('VERSION_EXISTS', `Model '${name}' already has version ${version}.`, {
      hint: 'Leave out --version to add the next version, or remove that version first with `helix models remove`.',
    })
  }
  const modelDir = join(repositoryDir, name)
  const createdModelDir = !existing
  await mkdir(modelDir, { recursive: true })
  const temp = join(modelDir, `.add-${randomBytes(6).toString('hex')}`)
  const target = join(modelDir, String(version))
  try {
    if (tfjs) await copyTfjsModel(tfjs, temp)
    else if (folder) await copyTextFolder(sourcePath, temp)
    else {
      await mkdir(temp)
      await copyFile(sourcePath, join(temp, modelFileName))
    }
    const handle = await open(join(temp, modelFileName), 'r')
    await handle.sync().finally(() => handle.close())
    // rename() refuses a non-empty target, so a concurrent add of the same version loses cleanly.
    await rename(temp, target)
    if (options.config && configText !== undefined) {
      const configTemp = join(modelDir, `.${CONFIG_FILE}-${randomBytes(6).toString('hex')}`)
      await writeFile(configTemp, configText)
      await rename(configTemp, join(modelDir, CONFIG_FILE))
    }
  } catch (err) {
    await rm(temp, { recursive: true, force: true })
    if (createdModelDir) await rm(modelDir, { recursive: true, force: true })
    throw err
  }
  return { name, version: String(version), path: join(target, modelFileName), ...signature }
}

/**
 * Removes a whole model or one version. The directory is first renamed to a hidden name (atomic,
 * so a daemon never sees half a version), then deleted.
 */
export async function removeModel(
  repositoryDir: string,
  name: string,
  options: { version?: number } = {},
): Promise<RemovedModel> {
  checkName(name)
  const existing = await readRepositoryModel(repositoryDir, name)
  if (!existing) {
    throw new UserError('MODEL_NOT_FOUND', `Model '${name}' is not in the repository ${repositoryDir}.`, {
      hint: 'See `helix models list` for the models there.',
    })
  }
  const modelDir = join(repositoryDir, name)
  let victim: string
  let versions: number[]
  if (options.version !== undefined) {
    if (!existing.versions.includes(options.version)) {
      throw new UserError(
        'VERSION_NOT_FOUND',
        `Model '${name}' has no version ${options.version} (has ${existing.versions.join(', ') || 'none'}).`,
        {
          hint: 'See `helix models list` for its versions.',
        },
      )
    }
    victim = join(modelDir, String(options.version))
    versions = [options.version]
  } else {
    victim = modelDir
    versions = existing.versions
  }
  const trash = join(
    options.version !== undefined ? modelDir : repositoryDir,
    `.remove-${randomBytes(6).toString('hex')}`,
  )
  await rename(victim, trash)
  await rm(trash, { recursive: true, force: true })
  return { name, versions: versions.map(String) }
}
