/**
 * The reference implementation for the text engines' tests: @huggingface/transformers (transformers.js)
 * run directly on a Hugging Face folder (e.g. one written by `text-models.ts`), on the CPU, fp32
 * (onnx/model.onnx), with remote models disabled.
 *
 * Folders are loaded by absolute path (transformers.js reads a path that is not a valid Hub id as is),
 * so two folders with the same basename never collide. transformers.js memoises config and file
 * metadata per path for the whole process: never rewrite a different model into a folder that was
 * already loaded in the same process.
 *
 * Loaded models, tokenizers and pipelines are cached per folder; call `disposeReferences()` in
 * afterAll.
 */
import { resolve } from 'node:path'
import {
  AutoModelForCausalLM,
  AutoTokenizer,
  env,
  type FeatureExtractionPipeline,
  type PreTrainedModel,
  type PreTrainedTokenizer,
  pipeline,
  Tensor,
} from '@huggingface/transformers'

env.allowRemoteModels = false
env.allowLocalModels = true
// No file cache: it is keyed by the request path and would outlive the temporary folders.
env.useFSCache = false
env.useBrowserCache = false

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {})
  content: string
}

const MODEL_OPTIONS = { dtype: 'fp32', device: 'cpu' } as const

const tokenizers = new Map<string, Promise<PreTrainedTokenizer>>()
const causalModels = new Map<string, Promise<PreTrainedModel>>()
const extractors = new Map<string, Promise<FeatureExtractionPipeline>>()

function cached<T>(cache: Map<string, Promise<T>>, key: string, load: () => Promise<T>): Promise<T> {
  let pending = cache.get(key)
  if (!pending) {
    pending = load()
    cache.set(key, pending)
    pending.catch(() => cache.delete(key))
  }
  return pending
}

/** The folder's tokenizer (tokenizer.json + tokenizer_config.json), cached per folder. */
export function referenceTokenizer(dir: string): Promise<PreTrainedTokenizer> {
  const path = resolve(dir)
  return cached(tokenizers, path, () => AutoTokenizer.from_pretrained(path))
}

/** The folder's AutoModelForCausalLM (onnx/model.onnx, fp32, cpu), cached per folder. */
export function referenceCausalModel(dir: string): Promise<PreTrainedModel> {
  const path = resolve(dir)
  return cached(causalModels, path, () => AutoModelForCausalLM.from_pretrained(path, MODEL_OPTIONS))
}

/** The folder's feature-extraction pipeline (AutoModel + tokenizer), cached per folder. */
export function referenceExtractor(dir: string): Promise<FeatureExtractionPipeline> {
  const path = resolve(dir)
  return cached(
    extractors,
    path,
    () => pipeline('feature-extraction', path, MODEL_OPTIONS) as Promise<FeatureExtractionPipeline>,
  )
}

/** The chat template rendered by the tokenizer, with the generation prompt (`<|im_start|>assistant\n`). */
export async function referenceChatPrompt(dir: string, messages: ChatMessage[]): Promise<string> {
  const tokenizer = await referenceTokenizer(dir)
  return tokenizer.apply_chat_template(messages, { add_generation_prompt: true, tokenize: false }) as string
}

/**
 * The token ids of `text`. `addSpecialTokens` defaults to true like transformers (Qwen3's tokenizer
 * adds none either way).
 */
export async function referenceEncode(
  dir: string,
  text: string,
  options: { addSpecialTokens?: boolean } = {},
): Promise<number[]> {
  const tokenizer = await referenceTokenizer(dir)
  return tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true })
}

/** Decodes ids back to text (special tokens kept unless `skipSpecialTokens`). */
export async function referenceDecode(
  dir: string,
  ids: number[],
  options: { skipSpecialTokens?: boolean } = {},
): Promise<string> {
  const tokenizer = await referenceTokenizer(dir)
  return tokenizer.decode(ids, { skip_special_tokens: options.skipSpecialTokens ?? false })
}

function int64Row(ids: number[]): Tensor {
  return new Tensor(
    'int64',
    BigInt64Array.from(ids, (id) => BigInt(id)),
    [1, ids.length],
  )
}

/**
 * Greedy decoding (do_sample false) with AutoModelForCausalLM.generate() on one sequence; returns
 * only the NEW token ids. The prompt is `promptIds`, or `messages` rendered by the chat template
 * (add_generation_prompt) and tokenized without special tokens, as transformers' apply_chat_template
 * does. Like transformers, generation stops after an eos id of generation_config.json
 * (`<|im_end|>`, `<|endoftext|>`), and that eos id IS included in the result; otherwise exactly
 * `maxNewTokens` ids come back.
 */
export async function referenceGreedy(
  dir: string,
  options: { promptIds?: number[]; messages?: ChatMessage[]; maxNewTokens: number },
): Promise<number[]> {
  let promptIds = options.promptIds
  if (!promptIds) {
    if (!options.messages) throw new Error('referenceGreedy: give promptIds or messages')
    const text = await referenceChatPrompt(dir, options.messages)
    promptIds = await referenceEncode(dir, text, { addSpecialTokens: false })
  }
  const model = await referenceCausalModel(dir)
  const output = (await model.generate({
    input_ids: int64Row(promptIds),
    attention_mask: int64Row(promptIds.map(() => 1)),
    max_new_tokens: options.maxNewTokens,
    do_sample: false,
  })) as Tensor
  const all = Array.from(output.data as BigInt64Array, Number)
  return all.slice(promptIds.length)
}

/**
 * Sentence embeddings through pipeline('feature-extraction') with the given pooling ('mean' over the
 * attention mask, or 'cls' = the first token's hidden state) and optional L2 normalisation. All texts
 * go in one padded batch.
 */
export async function referenceEmbeddings(
  dir: string,
  texts: string[],
  options: { pooling: 'mean' | 'cls'; normalize: boolean },
): Promise<Float32Array[]> {
  const extractor = await referenceExtractor(dir)
  const output = await extractor(texts, { pooling: options.pooling, normalize: options.normalize })
  const [rows, width] = output.dims as [number, number]
  const data = output.data as Float32Array
  return Array.from({ length: rows }, (_, i) => data.slice(i * width, (i + 1) * width))
}

/** Disposes every cached model and pipeline (their onnxruntime sessions) and forgets the caches. */
export async function disposeReferences(): Promise<void> {
  const models = await Promise.allSettled([...causalModels.values()])
  const pipes = await Promise.allSettled([...extractors.values()])
  causalModels.clear()
  extractors.clear()
  tokenizers.clear()
  await Promise.all([
    ...models.map((m) => (m.status === 'fulfilled' ? m.value.dispose() : undefined)),
    ...pipes.map((p) => (p.status === 'fulfilled' ? p.value.dispose() : undefined)),
  ])
}
