import { setTimeout as sleep, setImmediate as yieldToEventLoop } from 'node:timers/promises'
import type { OnnxSession } from '../backends/onnx-session.js'
import type { CancelSignal } from '../infer/cancel-signal.js'
import { cancelled, QueueFullError } from '../infer/errors.js'
import type { Tensor } from '../infer/types.js'

export type Pooling = 'mean' | 'cls'

export interface EmbedderOptions {
  pooling: Pooling
  normalize: boolean
  /** Tokens of one batch, padding included (Hugging Face TEI's max_batch_tokens). */
  maxBatchTokens: number
  /** Texts waiting before QUEUE_FULL. */
  maxWaiting: number
  /** How long the oldest text may wait for others before its batch runs (0: run at once). */
  maxQueueDelayMs: number
  label: string
}

interface Item {
  ids: number[]
  resolve: (vector: Float32Array) => void
  reject: (err: Error) => void
  signal?: CancelSignal
  queued: number
  /** Filled in when its batch runs. */
  timing?: { queueMs: number; computeMs: number; batchTokens: number }
}

/**
 * Batches embedding inputs by tokens, not by requests (as TEI does): a batch takes waiting texts in
 * order while rows × longest text stays within max_batch_tokens, runs the encoder once, and pools
 * each row (mean over its real tokens, or the first token) before L2-normalising it.
 */
export class Embedder {
  private readonly queue: Item[] = []
  private running?: Promise<void>
  private closed = false
  private readonly hiddenOutput: string
  private readonly tokenTypes: boolean

  /**
   * @param session where the encoder runs: a worker-thread session, so the event loop keeps parsing
   *   requests and tokenizing the next batch while one computes
   */
  constructor(
    private readonly session: OnnxSession,
    private readonly options: EmbedderOptions,
  ) {
    const outputs = session.outputMetadata.map((m) => m.name)
    this.hiddenOutput =
      ['last_hidden_state', 'token_embeddings', 'sentence_embedding'].find((n) => outputs.includes(n)) ??
      (outputs[0] as string)
    this.tokenTypes = session.inputMetadata.some((m) => m.name === 'token_type_ids')
  }

  get waiting(): number {
    return this.queue.length
  }

  /** Embeds each token list; resolves in input order. */
  async embed(
    inputs: number[][],
    signal?: CancelSignal,
  ): Promise<{
    vectors: Float32Array[]
    timing: { queueMs: number; computeMs: number; batchTokens: number }
  }> {
    if (this.closed) throw cancelled(this.options.label)
    if (this.queue.length + inputs.length > this.options.maxWaiting)
      throw new QueueFullError(`Model '${this.options.label}' has ${this.queue.length} texts waiting.`, 1)
    const items: Item[] = []
    const promises = inputs.map(
      (ids) =>
        new Promise<Float32Array>((resolve, reject) => {
          const item: Item = {
            ids,
            resolve,
            reject,
            queued: performance.now(),
            ...(signal ? { signal } : {}),
          }
          items.push(item)
          this.queue.push(item)
        }),
    )
    this.kick()
    const vectors = await Promise.all(promises)
    const timing = { queueMs: 0, computeMs: 0, batchTokens: 0 }
    for (const item of items) {
      timing.queueMs = Math.max(timing.queueMs, item.timing?.queueMs ?? 0)
      timing.computeMs += item.timing?.computeMs ?? 0
      timing.batchTokens = Math.max(timing.batchTokens, item.timing?.batchTokens ?? 0)
    }
    return { vectors, timing }
  }

  private kick(): void {
    if (this.running) return
    this.running = this.drain().finally(() => {
      this.running = undefined
      if (this.queue.length > 0 && !this.closed) this.kick()
    })
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.closed) {
      await this.gather()
      const batch = this.take()
      if (batch.length > 0) await this.runBatch(batch)
      await yieldToEventLoop()
    }
  }

  /**
   * Waits up to max_queue_delay_ms from the oldest waiting text for more to arrive while the batch
   * is not full: requests from many clients reach the queue over several event-loop turns (HTTP
   * parsing, tokenization), and a batch started on the first of them alone would waste the pass.
   */
  private async gather(): Promise<void> {
    const delay = this.options.maxQueueDelayMs
    if (delay <= 0) return
    for (;;) {
      const oldest = this.queue[0]
      if (!oldest || this.closed) return
      const waited = performance.now() - oldest.queued
      const longest = this.queue.reduce((n, item) => Math.max(n, item.ids.length), 0)
      if (waited >= delay || longest * (this.queue.length + 1) > this.options.maxBatchTokens) return
      await sleep(Math.max(0.1, delay - waited))
    }
  }

  /** The next batch: waiting texts in order while rows × longest fits the token budget. */
  private take(): Item[] {
    const batch: Item[] = []
    let longest = 0
    while (this.queue.length > 0) {
      const item = this.queue[0] as Item
      if (item.signal?.aborted) {
        this.queue.shift()
        item.reject(cancelled(this.options.label))
        continue
      }
      const next = Math.max(longest, item.ids.length)
      if (batch.length > 0 && next * (batch.length + 1) > this.options.maxBatchTokens) break
      batch.push(item)
      longest = next
      this.queue.shift()
    }
    return batch
  }

  private async runBatch(batch: Item[]): Promise<void> {
    const B = batch.length
    const S = Math.max(1, ...batch.map((i) => i.ids.length))
    const ids = new BigInt64Array(B * S)
    const mask = new BigInt64Array(B * S)
    batch.forEach((item, b) => {
      item.ids.forEach((id, i) => {
        ids[b * S + i] = BigInt(id)
        mask[b * S + i] = 1n
      })
    })
    const feeds: Tensor[] = [
      { name: 'input_ids', datatype: 'INT64', shape: [B, S], data: ids },
      { name: 'attention_mask', datatype: 'INT64', shape: [B, S], data: mask },
    ]
    if (this.tokenTypes)
      feeds.push({ name: 'token_type_ids', datatype: 'INT64', shape: [B, S], data: new BigInt64Array(B * S) })
    const started = performance.now()
    let output: Tensor
    try {
      output = (await this.session.run(feeds, [this.hiddenOutput]))[0] as Tensor
    } catch (err) {
      for (const item of batch) item.reject(err as Error)
      return
    }
    const computeMs = performance.now() - started
    const data = output.data as Float32Array
    const pooled = output.shape.length === 2
    const hidden = Number(output.shape[output.shape.length - 1])
    batch.forEach((item, b) => {
      const vector = new Float32Array(hidden)
      if (pooled) vector.set(data.subarray(b * hidden, (b + 1) * hidden))
      else if (this.options.pooling === 'cls') vector.set(data.subarray(b * S * hidden, (b * S + 1) * hidden))
      else {
        const n = item.ids.length
        const sum = new Float64Array(hidden)
        for (let i = 0; i < n; i++) {
          const from = (b * S + i) * hidden
          for (let d = 0; d < hidden; d++) sum[d] = (sum[d] as number) + (data[from + d] as number)
        }
        for (let d = 0; d < hidden; d++) vector[d] = (sum[d] as number) / Math.max(1, n)
      }
      if (this.options.normalize) normalize(vector)
      item.timing = { queueMs: started - item.queued, computeMs, batchTokens: B * S }
      item.resolve(vector)
    })
  }

  close(): void {
    this.closed = true
    for (const item of this.queue.splice(0)) item.reject(cancelled(this.options.label))
  }
}

/** Scales a vector to unit length in place (a zero vector stays zero). */
export function normalize(vector: Float32Array): Float32Array {
  let sum = 0
  for (let i = 0; i < vector.length; i++) sum += (vector[i] as number) ** 2
  const norm = Math.sqrt(sum)
  if (norm > 0) for (let i = 0; i < vector.length; i++) vector[i] = (vector[i] as number) / norm
  return vector
}
