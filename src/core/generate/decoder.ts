import * as ort from 'onnxruntime-node'

/**
 * A decoder-only ONNX graph as Optimum and transformers.js export it: input_ids, attention_mask,
 * optional position_ids and past_key_values.{i}.key/value in; logits and present.{i}.key/value out.
 * The KV cache lives in a padded batch (KvBatch) whose `present` outputs feed the next step's `past`
 * inputs as they are while the batch keeps its rows: the common decode step copies no cache at all.
 */

export interface DecoderShape {
  layers: number
  kvHeads: number
  headDim: number
  vocab: number
  /** past_key_values.* input names, in order, and the present.* output each feeds from. */
  pastNames: string[]
  presentNames: string[]
  positionIds: boolean
}

/** The cache of one sequence while it is not a row of the running batch: [kvHeads, length, headDim] per past name. */
export interface CompactCache {
  length: number
  tensors: Float32Array[]
}

/** What one row of a step feeds: new tokens (a prefill chunk, or the last sampled token). */
export interface StepRow {
  id: number
  tokens: number[]
}

export interface StepOutput {
  /** logits of the last new token of row i at [i * vocab, (i + 1) * vocab). */
  logits: Float32Array
  vocab: number
}

/** Reads the layer count, KV heads and names from the graph's inputs, checked against config.json. */
export function decoderShape(
  session: ort.InferenceSession,
  config: Record<string, unknown>,
): DecoderShape | undefined {
  const inputs = session.inputNames
  const pastNames = inputs.filter((n) => /^past_key_values\.\d+\.(key|value)$/.test(n))
  if (pastNames.length === 0 || !session.outputNames.includes('logits')) return undefined
  pastNames.sort((a, b) => {
    const [la, ka] = a.slice('past_key_values.'.length).split('.') as [string, string]
    const [lb, kb] = b.slice('past_key_values.'.length).split('.') as [string, string]
    return Number(la) - Number(lb) || ka.localeCompare(kb)
  })
  const presentNames = pastNames.map((n) => n.replace(/^past_key_values\./, 'present.'))
  const missing = presentNames.find((n) => !session.outputNames.includes(n))
  if (missing) throw new Error(`the graph has ${pastNames[0]} inputs but no ${missing} output`)
  const heads = Number(config.num_attention_heads)
  const kvHeads = Number(config.num_key_value_heads ?? heads)
  const headDim = Number(config.head_dim ?? Number(config.hidden_size) / heads)
  const vocab = Number(config.vocab_size)
  if (!(kvHeads > 0 && headDim > 0 && vocab > 0))
    throw new Error(
      'config.json needs num_attention_heads (or num_key_value_heads), head_dim or hidden_size, and vocab_size',
    )
  const meta = session.inputMetadata.find((m) => m.name === pastNames[0])
  if (meta && 'type' in meta && meta.type !== 'float32')
    throw new Error(`the KV cache is ${String(meta.type)}; only float32 caches are supported`)
  return {
    layers: pastNames.length / 2,
    kvHeads,
    headDim,
    vocab,
    pastNames,
    presentNames,
    positionIds: inputs.includes('position_ids'),
  }
}

/**
 * The running batch: one row per sequence, every cache padded to the batch's past length, which
 * positions are real kept in a mask. Rows change only through `repack`, which copies each cache once.
 */
export class KvBatch {
  /** Sequence ids of the rows, in order. */
  rows: number[] = []
  private past: ort.Tensor[] = []
  private pastLength = 0
  /** rows × pastLength: 1 where the cache holds a real token. */
  private mask = new Uint8Array(0)

  constructor(
    private readonly session: ort.InferenceSession,
    private readonly shape: DecoderShape,
  ) {}

  /** Bytes of the cache tensors held now (padding included). */
  get bytes(): number {
    return this.rows.length * this.pastLength * this.rowStride() * 4 * this.shape.pastNames.length
  }

  private rowStride(): number {
    return this.shape.kvHeads * this.shape.headDim
  }

  /** True when a step of these rows (in this order) can run on the batch as it is. */
  holds(ids: number[]): boolean {
    return ids.length === this.rows.length && ids.every((id, i) => this.rows[i] === id)
  }

  /** The cache of one row, copied out without its padding. */
  extract(id: number): CompactCache {
    const row = this.rows.indexOf(id)
    if (row < 0) return { length: 0, tensors: this.shape.pastNames.map(() => new Float32Array(0)) }
    const { kvHeads: heads, headDim: dim } = this.shape
    const P = this.pastLength
    const positions: number[] = []
    for (let p = 0; p < P; p++) if (this.mask[row * P + p]) positions.push(p)
    const length = positions.length
    const tensors = this.past.map((tensor) => {
      const data = tensor.data as Float32Array
      const out = new Float32Array(heads * length * dim)
      for (let h = 0; h < heads; h++) {
        const base = (row * heads + h) * P * dim
        for (let i = 0; i < length; i++) {
          const from = base + (positions[i] as number) * dim
          out.set(data.subarray(from, from + dim), (h * length + i) * dim)
        }
      }
      return out
    })
    return { length, tensors }
  }

  /** Makes these sequences the rows, each cache right-aligned to the longest one. */
  repack(rows: { id: number; cache: CompactCache }[]): void {
    const { kvHeads: heads, headDim: dim } = this.shape
    const B = rows.length
    const P = Math.max(0, ...rows.map((r) => r.cache.length))
    this.mask = new Uint8Array(B * P)
    this.past = this.shape.pastNames.map((_, t) => {
      const data = new Float32Array(B * heads * P * dim)
      rows.forEach(({ cache }, b) => {
        const L = cache.length
        const source = cache.tensors[t] as Float32Array
        for (let h = 0; h < heads; h++)
          data.set(source.subarray(h * L * dim, (h + 1) * L * dim), ((b * heads + h) * P + P - L) * dim)
      })
      return new ort.Tensor('float32', data, [B, heads, P, dim])
    })
    rows.forEach(({ cache }, b) => {
      this.mask.fill(1, b * P + P - cache.length, (b + 1) * P)
    })
    this.rows = rows.map((r) => r.id)
    this.pastLength = P
  }

  /** Drops every row (frees the cache). */
  clear(): void {
    this.repack([])
  }

  /**
   * One forward pass over the rows (which must be `holds`): each row's new tokens right-aligned in
   * a window of the longest, the padding masked out. Afterwards the present tensors are the past.
   */
  async step(rows: StepRow[], positions: number[]): Promise<StepOutput> {
    const B = rows.length
    const S = Math.max(...rows.map((r) => r.tokens.length))
    const P = this.pastLength
    const T = P + S
    const ids = new BigInt64Array(B * S)
    const pos = new BigInt64Array(B * S)
    const mask = new Uint8Array(B * T)
    rows.forEach((row, b) => {
      const n = row.tokens.length
      const start = positions[b] as number
      for (let i = 0; i < n; i++) {
        ids[b * S + S - n + i] = BigInt(row.tokens[i] as number)
        pos[b * S + S - n + i] = BigInt(start + i)
      }
      mask.set(this.mask.subarray(b * P, (b + 1) * P), b * T)
      mask.fill(1, b * T + P + S - n, (b + 1) * T)
    })
    const attention = new BigInt64Array(B * T)
    for (let i = 0; i < attention.length; i++) attention[i] = BigInt(mask[i] as number)
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', ids, [B, S]),
      attention_mask: new ort.Tensor('int64', attention, [B, T]),
    }
    if (this.shape.positionIds) feeds.position_ids = new ort.Tensor('int64', pos, [B, S])
    this.shape.pastNames.forEach((name, t) => {
      feeds[name] =
        this.past[t] ??
        new ort.Tensor('float32', new Float32Array(0), [B, this.shape.kvHeads, 0, this.shape.headDim])
    })
    const results = await this.session.run(feeds)
    this.past = this.shape.presentNames.map((name) => results[name] as ort.Tensor)
    this.mask = mask
    this.pastLength = T
    const logits = results.logits as ort.Tensor
    const all = logits.data as Float32Array
    const vocab = Number(logits.dims[2])
    const steps = Number(logits.dims[1])
    // Only the last position of each row is sampled from: a decode step's logits are that already.
    if (steps === 1) return { logits: all, vocab }
    const last = new Float32Array(B * vocab)
    for (let b = 0; b < B; b++) {
      const from = (b * steps + steps - 1) * vocab
      last.set(all.subarray(from, from + vocab), b * vocab)
    }
    logits.dispose?.()
    return { logits: last, vocab }
  }
}
