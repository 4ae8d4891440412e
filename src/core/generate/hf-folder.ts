import { existsSync } from 'node:fs'
import { join } from 'node:path'

/** The graph of a Hugging Face–format version folder (what Optimum and transformers.js exports hold). */
export const TEXT_MODEL_FILE = join('onnx', 'model.onnx')
export const TOKENIZER_FILE = 'tokenizer.json'

/** True when a version directory is a Hugging Face–format text model (onnx/model.onnx beside tokenizer.json). */
export function isTextModelDir(dir: string): boolean {
  return existsSync(join(dir, TEXT_MODEL_FILE)) && existsSync(join(dir, TOKENIZER_FILE))
}
