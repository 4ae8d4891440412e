import { existsSync } from 'node:fs'
import { readdir, readFile, stat } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { TFJS_MODEL_FILE, tfjsShardStats } from '../backends/tfjs/tfjs-files.js'
import { isTextModelDir, TEXT_MODEL_FILE } from '../generate/hf-folder.js'

export const MODEL_FILE = 'model.onnx'
/** The model files a version directory may hold, by backend: ONNX first, then TorchScript, then TensorFlow.js. */
export const MODEL_FILES = [MODEL_FILE, 'model.pt', 'model.json'] as const
export const CONFIG_FILE = 'config.yaml'

/** Model names are path segments and URL segments: keep them to a safe alphabet. */
export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/

/** One model directory as found on disk, before anything is loaded. */
export interface RepositoryModel {
  name: string
  dir: string
  /** Numeric version directories, ascending. */
  versions: number[]
  /** config.yaml text, when the file exists. */
  configText?: string
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false
}

/** Reads one model directory; undefined when it does not exist. */
export async function readRepositoryModel(
  repositoryDir: string,
  name: string,
): Promise<RepositoryModel | undefined> {
  const dir = join(repositoryDir, name)
  if (!MODEL_NAME_PATTERN.test(name) || !(await isDirectory(dir))) return undefined
  const entries = await readdir(dir, { withFileTypes: true })
  // Triton's layout: version directories are positive integers; anything else is ignored.
  const versions = entries
    .filter((e) => e.isDirectory() && /^[1-9][0-9]{0,8}$/.test(e.name))
    .map((e) => Number(e.name))
    .sort((a, b) => a - b)
  let configText: string | undefined
  try {
    configText = await readFile(join(dir, CONFIG_FILE), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  return { name, dir, versions, ...(configText !== undefined ? { configText } : {}) }
}

/** Every model directory of a repository (an absent repository is an empty one). */
export async function scanRepository(repositoryDir: string): Promise<RepositoryModel[]> {
  const entries = await readdir(repositoryDir, { withFileTypes: true }).catch(
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return []
      throw err
    },
  )
  const names = entries.filter((e) => e.isDirectory() && MODEL_NAME_PATTERN.test(e.name)).map((e) => e.name)
  const models = await Promise.all(names.sort().map((n) => readRepositoryModel(repositoryDir, n)))
  return models.filter((m): m is RepositoryModel => m !== undefined)
}

/** Path of a version's model file: model.onnx, onnx/model.onnx of a text model, or model.pt / model.json when only that exists. */
export function modelFile(model: RepositoryModel, version: number): string {
  const dir = join(model.dir, String(version))
  // A Hugging Face–format folder (Optimum, transformers.js exports) keeps its graph in onnx/.
  if (isTextModelDir(dir)) return join(dir, TEXT_MODEL_FILE)
  const found = MODEL_FILES.find((file) => existsSync(join(dir, file)))
  return join(dir, found ?? MODEL_FILE)
}

/**
 * A version's model file: its size (what the memory budget estimates from) and what identifies its
 * files on disk (a reload keeps a loaded version whose fingerprint did not change, and re-opens one
 * whose model.onnx or config.yaml did); undefined when the file is missing. One stat for both.
 */
export async function versionFile(
  model: RepositoryModel,
  version: number,
): Promise<{ fingerprint: string; size: number } | undefined> {
  const path = modelFile(model, version)
  const info = await stat(path).catch(() => undefined)
  if (!info?.isFile()) return undefined
  // A TF.js model.json is a few kB: its weight shards are what a reload must notice and the budget count.
  const shards = basename(path) === TFJS_MODEL_FILE ? await tfjsShardStats(path) : undefined
  return {
    fingerprint: `${info.size}:${info.mtimeMs}:${info.ino}:${shards ? `${shards.stamp}:` : ''}${model.configText ?? ''}`,
    size: info.size + (shards?.bytes ?? 0),
  }
}
