import { randomBytes } from 'node:crypto'
import { copyFile, mkdir, open, rename, rm, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import * as ort from 'onnxruntime-node'
import { firstLine, UserError } from '../../shared/errors.js'
import { specFromMetadata } from '../backends/onnx-tensors.js'
import { MODEL_FILE, MODEL_NAME_PATTERN, readRepositoryModel } from './repository.js'
import type { TensorSpec } from './types.js'

export interface AddedModel {
  name: string
  version: string
  path: string
  inputs: TensorSpec[]
  outputs: TensorSpec[]
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
 * Copies a model file into the repository as <name>/<version>/model.onnx, after onnxruntime has
 * loaded it. All or nothing: the file goes to a hidden temp directory first, fsynced, and the
 * directory is renamed into place; on any failure nothing is left behind.
 */
export async function addModel(
  repositoryDir: string,
  name: string,
  source: string,
  options: { version?: number } = {},
): Promise<AddedModel> {
  checkName(name)
  const sourcePath = resolve(source)
  const info = await stat(sourcePath).catch(() => undefined)
  if (!info?.isFile()) {
    throw new UserError('MODEL_FILE_NOT_FOUND', `No model file at ${sourcePath}.`, {
      hint: 'Give the path of an .onnx file.',
    })
  }
  const signature = await validateOnnxFile(sourcePath)
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
    await mkdir(temp)
    await copyFile(sourcePath, join(temp, MODEL_FILE))
    const handle = await open(join(temp, MODEL_FILE), 'r')
    await handle.sync().finally(() => handle.close())
    // rename() refuses a non-empty target, so a concurrent add of the same version loses cleanly.
    await rename(temp, target)
  } catch (err) {
    await rm(temp, { recursive: true, force: true })
    if (createdModelDir) await rm(modelDir, { recursive: true, force: true })
    throw err
  }
  return { name, version: String(version), path: join(target, MODEL_FILE), ...signature }
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
