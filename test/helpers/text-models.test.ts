import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as ort from 'onnxruntime-node'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  type ChatModel,
  type EmbeddingModel,
  QWEN3_IM_END_ID,
  writeChatModel,
  writeEmbeddingModel,
} from './text-models.js'
import {
  disposeReferences,
  referenceChatPrompt,
  referenceEmbeddings,
  referenceEncode,
  referenceGreedy,
} from './transformers-reference.js'

const ids64 = (rows: number[][]) =>
  new ort.Tensor(
    'int64',
    BigInt64Array.from(rows.flat(), (v) => BigInt(v)),
    [rows.length, rows[0].length],
  )

/** position_ids as transformers.js derives them: cumsum(mask) - 1 on real tokens, 1 on padding. */
function positionsFromMask(mask: number[][], seqLen: number): number[][] {
  return mask.map((row) => {
    let n = 0
    const pos = row.map((m) => (m ? n++ : 1))
    return pos.slice(pos.length - seqLen)
  })
}

/** A direct onnxruntime-node decoder step; `past` is null for an empty cache. */
async function step(
  session: ort.InferenceSession,
  model: ChatModel,
  inputIds: number[][],
  mask: number[][],
  past: Record<string, ort.Tensor> | null,
): Promise<{ logits: ort.Tensor; present: Record<string, ort.Tensor> }> {
  const { num_hidden_layers: layers, num_key_value_heads: kv, head_dim: headDim } = model.config
  const feeds: Record<string, ort.Tensor> = { input_ids: ids64(inputIds), attention_mask: ids64(mask) }
  if (model.positionIds) feeds.position_ids = ids64(positionsFromMask(mask, inputIds[0].length))
  for (let i = 0; i < layers; i++) {
    for (const kind of ['key', 'value']) {
      feeds[`past_key_values.${i}.${kind}`] =
        past?.[`present.${i}.${kind}`] ??
        new ort.Tensor('float32', new Float32Array(0), [inputIds.length, kv, 0, headDim])
    }
  }
  const out = await session.run(feeds)
  const { logits, ...present } = out
  return { logits, present }
}

function argmaxRow(logits: ort.Tensor, row: number, pos: number): number {
  const [, seq, vocab] = logits.dims as number[]
  const data = logits.data as Float32Array
  const off = (row * seq + pos) * vocab
  let best = 0
  for (let v = 1; v < vocab; v++) if (data[off + v] > data[off + best]) best = v
  return best
}

function logitsAt(logits: ort.Tensor, row: number, pos: number): Float32Array {
  const [, seq, vocab] = logits.dims as number[]
  const off = (row * seq + pos) * vocab
  return (logits.data as Float32Array).subarray(off, off + vocab)
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length)
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]))
  return m
}

/** Greedy decoding with the KV cache: prefill, then one token per step feeding present → past. */
async function ortGreedy(
  session: ort.InferenceSession,
  model: ChatModel,
  prompt: number[],
  maxNewTokens: number,
): Promise<number[]> {
  const out: number[] = []
  const mask = [prompt.map(() => 1)]
  let { logits, present } = await step(session, model, [prompt], mask, null)
  let next = argmaxRow(logits, 0, prompt.length - 1)
  for (;;) {
    out.push(next)
    if (model.eosTokenIds.includes(next) || out.length >= maxNewTokens) return out
    mask[0].push(1)
    ;({ logits, present } = await step(session, model, [[next]], mask, present))
    next = argmaxRow(logits, 0, 0)
  }
}

const CHAT_A = [{ role: 'user', content: 'Write a haiku about the sea.' }]
const CHAT_B = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'List three prime numbers, please.' },
]

let root: string
let chat: ChatModel
let chatNoPos: ChatModel
let emb: EmbeddingModel
let embCls: EmbeddingModel
const sessions: ort.InferenceSession[] = []

async function open(path: string): Promise<ort.InferenceSession> {
  const s = await ort.InferenceSession.create(path)
  sessions.push(s)
  return s
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'helix-text-models-'))
  const started = performance.now()
  ;[chat, chatNoPos, emb, embCls] = await Promise.all([
    writeChatModel(join(root, 'chat')),
    writeChatModel(join(root, 'chat-nopos'), { positionIds: false, seed: 7, kvHeads: 1 }),
    writeEmbeddingModel(join(root, 'embed'), { tokenTypeIds: true }),
    writeEmbeddingModel(join(root, 'embed-cls'), { pooling: 'cls', seed: 5 }),
  ])
  console.log(`wrote 4 models in ${Math.round(performance.now() - started)} ms`)
})

afterAll(async () => {
  await disposeReferences()
  await Promise.all(sessions.map((s) => s.release()))
  if (root) await rm(root, { recursive: true, force: true })
})

describe('writeChatModel', () => {
  it('writes the Hugging Face layout with a Qwen3 config', async () => {
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json']) {
      expect((await stat(join(chat.dir, f))).isFile()).toBe(true)
    }
    const size = (await stat(chat.onnxPath)).size
    expect(size).toBe(chat.onnxBytes)
    expect(size).toBeLessThan(12 * 1024 * 1024)
    expect(chat.config).toMatchObject({ model_type: 'qwen3', vocab_size: 151936, tie_word_embeddings: true })
    expect(chat.eosTokenIds).toEqual([151645, 151643])

    const s = await open(chat.onnxPath)
    expect(s.inputNames).toEqual([
      'input_ids',
      'attention_mask',
      'position_ids',
      ...[0, 1].flatMap((i) => [`past_key_values.${i}.key`, `past_key_values.${i}.value`]),
    ])
    expect(s.outputNames).toEqual([
      'logits',
      ...[0, 1].flatMap((i) => [`present.${i}.key`, `present.${i}.value`]),
    ])
    const sNoPos = await open(chatNoPos.onnxPath)
    expect(sNoPos.inputNames).not.toContain('position_ids')
  })

  it('renders the chat template and tokenizes like transformers', async () => {
    const text = await referenceChatPrompt(chat.dir, CHAT_A)
    expect(text).toBe('<|im_start|>user\nWrite a haiku about the sea.<|im_end|>\n<|im_start|>assistant\n')
    const ids = await referenceEncode(chat.dir, text)
    expect(ids[0]).toBe(151644) // <|im_start|>
    expect(ids).toContain(QWEN3_IM_END_ID)
    expect(ids.every((id) => id < chat.vocabSize)).toBe(true)
  })

  it('transformers.js generates context-dependent, non-trivial greedy continuations', async () => {
    const a = await referenceGreedy(chat.dir, { messages: CHAT_A, maxNewTokens: 24 })
    const b = await referenceGreedy(chat.dir, { messages: CHAT_B, maxNewTokens: 24 })
    expect(a).toHaveLength(24)
    expect(b).toHaveLength(24)
    expect(new Set(a).size).toBeGreaterThan(3)
    expect(new Set(b).size).toBeGreaterThan(3)
    expect(a).not.toEqual(b)
    // Deterministic: the same model from the same seed.
    expect(await referenceGreedy(chat.dir, { messages: CHAT_A, maxNewTokens: 24 })).toEqual(a)
  })

  for (const which of ['position_ids', 'no position_ids, GQA'] as const) {
    it(`a direct onnxruntime KV-cache greedy loop matches transformers.js (${which})`, async () => {
      const model = which === 'position_ids' ? chat : chatNoPos
      const session = await open(model.onnxPath)
      for (const messages of [CHAT_A, CHAT_B]) {
        const prompt = await referenceEncode(model.dir, await referenceChatPrompt(model.dir, messages))
        const expected = await referenceGreedy(model.dir, { promptIds: prompt, maxNewTokens: 24 })
        expect(new Set(expected).size).toBeGreaterThan(3)
        expect(await ortGreedy(session, model, prompt, 24)).toEqual(expected)
      }
    })
  }

  it('prefill is causal: cached decoding gives the same logits as recomputing the whole sequence', async () => {
    const session = await open(chat.onnxPath)
    const seq = [151644, 872, 198, 9707, 11, 1879, 0, 151645, 198, 151644, 77091, 198]
    const full = await step(session, chat, [seq], [seq.map(() => 1)], null)
    // Prefill 7 tokens, then feed the rest one by one.
    let { logits, present } = await step(session, chat, [seq.slice(0, 7)], [Array(7).fill(1)], null)
    for (let t = 0; t < 7; t++)
      expect(maxAbsDiff(logitsAt(logits, 0, t), logitsAt(full.logits, 0, t))).toBeLessThan(1e-4)
    for (let t = 7; t < seq.length; t++) {
      ;({ logits, present } = await step(session, chat, [[seq[t]]], [Array(t + 1).fill(1)], present))
      expect(maxAbsDiff(logitsAt(logits, 0, 0), logitsAt(full.logits, 0, t))).toBeLessThan(1e-4)
    }
    // The logits are well separated (std ≳ 5).
    const row = logitsAt(full.logits, 0, 3)
    const mean = row.reduce((s, v) => s + v, 0) / row.length
    const std = Math.sqrt(row.reduce((s, v) => s + (v - mean) ** 2, 0) / row.length)
    expect(std).toBeGreaterThan(5)
  })

  it('position_ids matter when they are an input', async () => {
    const session = await open(chat.onnxPath)
    const feeds = (positions: number[]) => {
      const f: Record<string, ort.Tensor> = {
        input_ids: ids64([[9707, 1879, 0]]),
        attention_mask: ids64([[1, 1, 1]]),
        position_ids: ids64([positions]),
      }
      for (let i = 0; i < 2; i++)
        for (const k of ['key', 'value'])
          f[`past_key_values.${i}.${k}`] = new ort.Tensor('float32', new Float32Array(0), [1, 2, 0, 8])
      return f
    }
    const a = await session.run(feeds([0, 1, 2]))
    const b = await session.run(feeds([5, 6, 7]))
    expect(maxAbsDiff(a.logits.data as Float32Array, b.logits.data as Float32Array)).toBeGreaterThan(1)
  })

  for (const which of ['position_ids', 'no position_ids, GQA'] as const) {
    it(`left padding in a batch gives each row's logits alone, prefill and decode (${which})`, async () => {
      const model = which === 'position_ids' ? chat : chatNoPos
      const session = await open(model.onnxPath)
      const long = [151644, 872, 198, 9707, 11, 1879, 0, 151645, 198]
      const short = [151644, 872, 198, 13048]
      const pad = model.config.pad_token_id
      const width = long.length
      const padded = [long, [...Array(width - short.length).fill(pad), ...short]]
      const mask = [long.map(() => 1), [...Array(width - short.length).fill(0), ...short.map(() => 1)]]
      const batch = await step(session, model, padded, mask, null)
      const aloneLong = await step(session, model, [long], [long.map(() => 1)], null)
      const aloneShort = await step(session, model, [short], [short.map(() => 1)], null)
      for (let t = 0; t < long.length; t++) {
        expect(
          maxAbsDiff(logitsAt(batch.logits, 0, t), logitsAt(aloneLong.logits, 0, t)),
        ).toBeLessThanOrEqual(1e-4)
      }
      const offset = width - short.length
      for (let t = 0; t < short.length; t++) {
        expect(
          maxAbsDiff(logitsAt(batch.logits, 1, offset + t), logitsAt(aloneShort.logits, 0, t)),
        ).toBeLessThanOrEqual(1e-4)
      }
      // One decode step over the padded past.
      const next = [argmaxRow(batch.logits, 0, width - 1), argmaxRow(batch.logits, 1, width - 1)]
      const decoded = await step(
        session,
        model,
        [[next[0]], [next[1]]],
        mask.map((m) => [...m, 1]),
        batch.present,
      )
      const longNext = await step(session, model, [[next[0]]], [[...long.map(() => 1), 1]], aloneLong.present)
      const shortNext = await step(
        session,
        model,
        [[next[1]]],
        [[...short.map(() => 1), 1]],
        aloneShort.present,
      )
      expect(maxAbsDiff(logitsAt(decoded.logits, 0, 0), logitsAt(longNext.logits, 0, 0))).toBeLessThanOrEqual(
        1e-4,
      )
      expect(
        maxAbsDiff(logitsAt(decoded.logits, 1, 0), logitsAt(shortNext.logits, 0, 0)),
      ).toBeLessThanOrEqual(1e-4)
    })
  }
})

describe('writeEmbeddingModel', () => {
  const TEXTS = ['The quick brown fox jumps over the lazy dog.', 'Hello']

  async function ortHidden(model: EmbeddingModel, texts: string[]) {
    const session = await open(model.onnxPath)
    const rows = await Promise.all(texts.map((t) => referenceEncode(model.dir, t)))
    const width = Math.max(...rows.map((r) => r.length))
    const ids = rows.map((r) => [...r, ...Array(width - r.length).fill(151643)])
    const mask = rows.map((r) => [...r.map(() => 1), ...Array(width - r.length).fill(0)])
    const feeds: Record<string, ort.Tensor> = { input_ids: ids64(ids), attention_mask: ids64(mask) }
    if (model.tokenTypeIds) feeds.token_type_ids = ids64(ids.map((r) => r.map(() => 0)))
    const out = await session.run(feeds)
    return { hidden: out.last_hidden_state, rows, width }
  }

  function normalize(v: Float32Array): Float32Array {
    const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0))
    return v.map((x) => x / n)
  }

  it('transformers.js mean pooling equals a manual mean pool of last_hidden_state', async () => {
    expect(emb.hidden).toBe(32)
    const { hidden, rows, width } = await ortHidden(emb, TEXTS)
    expect(hidden.dims).toEqual([2, width, 32])
    const data = hidden.data as Float32Array
    const reference = await referenceEmbeddings(emb.dir, TEXTS, { pooling: 'mean', normalize: true })
    rows.forEach((r, i) => {
      const mean = new Float32Array(32)
      for (let t = 0; t < r.length; t++)
        for (let d = 0; d < 32; d++) mean[d] += data[(i * width + t) * 32 + d] / r.length
      expect(maxAbsDiff(reference[i], normalize(mean))).toBeLessThanOrEqual(1e-5)
    })
    expect(maxAbsDiff(reference[0], reference[1])).toBeGreaterThan(0.1)
  })

  it('padding a shorter text in a batch does not change its embedding (mean and cls)', async () => {
    for (const [model, pooling] of [
      [emb, 'mean'],
      [embCls, 'cls'],
    ] as const) {
      const [alone] = await referenceEmbeddings(model.dir, [TEXTS[1]], { pooling, normalize: true })
      const batch = await referenceEmbeddings(model.dir, TEXTS, { pooling, normalize: true })
      expect(maxAbsDiff(alone, batch[1])).toBeLessThanOrEqual(1e-5)
    }
    // cls pooling is the first token's state: manual check against onnxruntime.
    const { hidden, width } = await ortHidden(embCls, TEXTS)
    const [first] = await referenceEmbeddings(embCls.dir, [TEXTS[0]], { pooling: 'cls', normalize: false })
    expect(maxAbsDiff(first, (hidden.data as Float32Array).slice(0, 32))).toBeLessThanOrEqual(1e-5)
    expect(width).toBeGreaterThan(1)
  })
})
