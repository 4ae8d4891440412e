import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import type { CancelSignal } from '../infer/cancel-signal.js'
import { cancelled, modelNotReady, QueueFullError } from '../infer/errors.js'
import type { CoreLogger } from '../logger.js'
import type { CompactCache, DecoderShape, KvBatch, StepRow } from './decoder.js'
import { type Pick, pickToken, type SamplerSettings, SeededRandom } from './sampling.js'
import { StopStrings } from './stop-strings.js'
import { IncrementalDecoder, type TextTokenizer } from './text-tokenizer.js'
import type { DoneEvent, GenerationEvent, GenerationStats, SamplingOptions, TokenEvent } from './types.js'

export interface SchedulerLimits {
  /** Sequences in the running batch at once. */
  maxSequences: number
  /** Requests waiting for a place before QUEUE_FULL. */
  maxWaiting: number
  /** Tokens (padding included) of one prefill pass. */
  prefillTokens: number
  /** Bytes the KV caches of admitted sequences may reserve (each at its longest). */
  kvBudgetBytes: number
}

export interface SequenceInput {
  promptIds: number[]
  maxTokens: number
  sampling: SamplingOptions
  key: string
  eosTokenIds: ReadonlySet<number>
}

/** One request's sequence, from the waiting queue to its last token. */
class Sequence {
  readonly id: number
  /** Prompt tokens not fed to the model yet (a long prompt is prefilled in chunks). */
  remaining: number[]
  /** Tokens whose keys and values are in the cache. */
  cached = 0
  generated: number[] = []
  cache?: CompactCache
  readonly counts = new Map<number, number>()
  readonly random: SeededRandom
  readonly decoder: IncrementalDecoder
  readonly stops: StopStrings
  readonly settings: SamplerSettings
  readonly submitted = performance.now()
  admitted?: number
  firstToken?: number
  cancelled = false
  finished = false
  /** Events not yet taken by the consumer, and the consumer waiting for one. */
  readonly events: GenerationEvent[] = []
  wake?: () => void
  failure?: Error
  readonly reservedBytes: number

  constructor(
    id: number,
    readonly input: SequenceInput,
    tokenizer: TextTokenizer,
    bytesPerToken: number,
  ) {
    this.id = id
    this.remaining = input.promptIds.slice()
    const s = input.sampling
    this.random = new SeededRandom(s.seed ?? Math.floor(Math.random() * 2 ** 32))
    this.decoder = new IncrementalDecoder(tokenizer)
    this.stops = new StopStrings(s.stop ?? [])
    this.settings = {
      temperature: s.temperature ?? 1,
      topP: s.topP ?? 1,
      presencePenalty: s.presencePenalty ?? 0,
      frequencyPenalty: s.frequencyPenalty ?? 0,
      logprobs: s.logprobs ?? false,
      topLogprobs: s.topLogprobs ?? 0,
    }
    this.reservedBytes = (input.promptIds.length + input.maxTokens) * bytesPerToken
  }

  push(event: GenerationEvent): void {
    this.events.push(event)
    this.wake?.()
  }
}

/**
 * Continuous (iteration-level) batching for one decoder model, as vLLM and TGI do it: sequences
 * join the running batch between steps and leave it as soon as they finish. Each step is either a
 * prefill pass over newly admitted prompts (as many as the token budget holds, long prompts in
 * chunks) or one decode pass over every running sequence. Admission takes the waiting requests
 * round-robin by caller key, so one key with many requests cannot starve another.
 */
export class GenerationScheduler {
  private nextId = 1
  /** Waiting sequences by caller key; keys are served in turn. */
  private readonly waiting = new Map<string, Sequence[]>()
  private waitingCount = 0
  private running: Sequence[] = []
  private reserved = 0
  private loop?: Promise<void>
  private closed = false
  /** Mean seconds a sequence holds its place (for Retry-After). */
  private meanSequenceSeconds = 1

  constructor(
    private readonly batch: KvBatch,
    private readonly shape: DecoderShape,
    private readonly tokenizer: TextTokenizer,
    private readonly limits: SchedulerLimits,
    private readonly label: string,
    private readonly logger: CoreLogger,
  ) {}

  private get bytesPerToken(): number {
    return this.shape.pastNames.length * this.shape.kvHeads * this.shape.headDim * 4
  }

  /** KV bytes one sequence of this many tokens reserves. */
  reservation(tokens: number): number {
    return tokens * this.bytesPerToken
  }

  stats(): GenerationStats {
    return {
      running: this.running.length,
      waiting: this.waitingCount,
      kvCacheBytes: this.batch.bytes,
      kvCacheBudgetBytes: this.limits.kvBudgetBytes,
    }
  }

  /**
   * Queues a sequence (QUEUE_FULL is thrown here, before anything streams) and returns its events;
   * leaving the iteration early cancels it.
   */
  submit(input: SequenceInput, signal?: CancelSignal): AsyncGenerator<GenerationEvent> {
    if (this.closed) throw cancelled(this.label)
    // Requests that take a free place at the next step are not waiting.
    const free = Math.max(0, this.limits.maxSequences - this.running.length)
    if (this.waitingCount >= this.limits.maxWaiting + free) {
      const ahead = this.waitingCount + this.running.length
      const retry = Math.max(1, Math.ceil((ahead / this.limits.maxSequences) * this.meanSequenceSeconds))
      throw new QueueFullError(
        `Model '${this.label}' has ${this.waitingCount} requests waiting for a place in its running batch.`,
        retry,
      )
    }
    const seq = new Sequence(this.nextId++, input, this.tokenizer, this.bytesPerToken)
    const queue = this.waiting.get(input.key) ?? []
    queue.push(seq)
    this.waiting.set(input.key, queue)
    this.waitingCount++
    // A client that goes away while its request waits (or runs) frees its place at the next step,
    // whether or not anything is reading the stream.
    const onAbort = () => {
      if (!seq.finished) seq.cancelled = true
      seq.wake?.()
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    this.kick()
    return this.stream(seq, signal, () => signal?.removeEventListener('abort', onAbort))
  }

  private async *stream(
    seq: Sequence,
    signal: CancelSignal | undefined,
    detach: () => void,
  ): AsyncGenerator<GenerationEvent> {
    try {
      for (;;) {
        if (signal?.aborted) return
        const event = seq.events.shift()
        if (event) {
          yield event
          if (event.type === 'done') return
          continue
        }
        if (seq.failure) throw seq.failure
        await new Promise<void>((resolve) => {
          seq.wake = resolve
        })
        seq.wake = undefined
      }
    } finally {
      // A consumer that stops reading (a client that went away) frees its place at the next step.
      if (!seq.finished) seq.cancelled = true
      detach()
    }
  }

  private kick(): void {
    if (this.loop || this.closed) return
    this.loop = this.run()
      .catch((err) => this.logger.error({ err, model: this.label }, 'generation loop failed'))
      .finally(() => {
        this.loop = undefined
        if (!this.closed && (this.waitingCount > 0 || this.running.length > 0)) this.kick()
      })
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      this.dropCancelled()
      this.admit()
      if (this.running.length === 0) return
      const prefilling = this.running.filter((s) => s.remaining.length > 0)
      const group = prefilling.length > 0 ? this.prefillGroup(prefilling) : this.running.slice()
      try {
        await this.step(group)
      } catch (err) {
        for (const seq of group) this.fail(seq, err as Error)
        this.batch.clear()
        for (const seq of this.running) seq.cache = undefined
      }
      // Let sockets flush the tokens just produced and new requests arrive before the next step.
      await yieldToEventLoop()
    }
  }

  /** Prompts to prefill now: in order, while rows × longest chunk stays within the token budget. */
  private prefillGroup(prefilling: Sequence[]): Sequence[] {
    const budget = this.limits.prefillTokens
    const group: Sequence[] = []
    let longest = 0
    for (const seq of prefilling) {
      const chunk = Math.min(seq.remaining.length, budget)
      const next = Math.max(longest, chunk)
      if (group.length > 0 && next * (group.length + 1) > budget) break
      group.push(seq)
      longest = next
    }
    return group
  }

  private admit(): void {
    while (this.running.length < this.limits.maxSequences && this.waitingCount > 0) {
      const [key, queue] = this.waiting.entries().next().value as [string, Sequence[]]
      const seq = queue[0] as Sequence
      if (this.running.length > 0 && this.reserved + seq.reservedBytes > this.limits.kvBudgetBytes) return
      queue.shift()
      this.waitingCount--
      // Round-robin: the key goes to the back of the line once one of its requests got a place.
      this.waiting.delete(key)
      if (queue.length > 0) this.waiting.set(key, queue)
      if (seq.cancelled) continue
      seq.admitted = performance.now()
      this.reserved += seq.reservedBytes
      this.running.push(seq)
    }
  }

  private dropCancelled(): void {
    for (const [key, queue] of this.waiting) {
      const kept = queue.filter((s) => !s.cancelled)
      this.waitingCount -= queue.length - kept.length
      if (kept.length === 0) this.waiting.delete(key)
      else this.waiting.set(key, kept)
    }
    const gone = this.running.filter((s) => s.cancelled || s.finished)
    for (const seq of gone) this.release(seq)
  }

  private release(seq: Sequence): void {
    const at = this.running.indexOf(seq)
    if (at < 0) return
    this.running.splice(at, 1)
    this.reserved -= seq.reservedBytes
    seq.cache = undefined
    const held = (performance.now() - (seq.admitted ?? seq.submitted)) / 1000
    this.meanSequenceSeconds = 0.9 * this.meanSequenceSeconds + 0.1 * held
  }

  private fail(seq: Sequence, err: Error): void {
    seq.failure = err
    seq.finished = true
    this.release(seq)
    seq.wake?.()
  }

  private async step(group: Sequence[]): Promise<void> {
    const ids = group.map((s) => s.id)
    if (!this.batch.holds(ids)) {
      // Sequences leave the batch tensors with their cache; the step's rows are packed from theirs.
      for (const id of this.batch.rows) {
        const seq = this.running.find((s) => s.id === id)
        if (seq && !seq.cache) seq.cache = this.batch.extract(id)
      }
      this.batch.repack(
        group.map((s) => ({
          id: s.id,
          cache: s.cache ?? { length: 0, tensors: this.shape.pastNames.map(() => new Float32Array(0)) },
        })),
      )
      for (const seq of group) seq.cache = undefined
    }
    const rows: StepRow[] = group.map((seq) => {
      if (seq.remaining.length > 0) {
        const chunk = seq.remaining.splice(0, this.limits.prefillTokens)
        return { id: seq.id, tokens: chunk }
      }
      return { id: seq.id, tokens: [seq.generated[seq.generated.length - 1] as number] }
    })
    const positions = group.map((s) => s.cached)
    const output = await this.batch.step(rows, positions)
    group.forEach((seq, b) => {
      seq.cached += (rows[b] as StepRow).tokens.length
      if (seq.remaining.length > 0 || seq.cancelled) return
      const pick = pickToken(
        output.logits,
        b * output.vocab,
        output.vocab,
        seq.settings,
        seq.counts,
        seq.random,
      )
      this.accept(seq, pick)
    })
  }

  /** Takes a sampled token: streams it, or ends the sequence (end of sequence, stop string, length). */
  private accept(seq: Sequence, pick: Pick): void {
    const now = performance.now()
    seq.firstToken ??= now
    seq.generated.push(pick.token)
    seq.counts.set(pick.token, (seq.counts.get(pick.token) ?? 0) + 1)
    const { input } = seq
    const eos = input.eosTokenIds.has(pick.token) && !input.sampling.ignoreEos
    let stopped = false
    if (!eos) {
      const decoded = seq.decoder.push(pick.token)
      const { text, stopped: hit } = seq.stops.push(decoded)
      stopped = hit
      const event: TokenEvent = {
        type: 'token',
        tokenId: pick.token,
        text,
        index: seq.generated.length - 1,
        ...(pick.logprob !== undefined ? { logprob: this.logprob(pick) } : {}),
      }
      seq.push(event)
    }
    const length = seq.generated.length >= input.maxTokens
    if (!(eos || stopped || length)) return
    let tail = ''
    if (!stopped) {
      const flushed = seq.stops.push(seq.decoder.flush())
      tail = flushed.text + (flushed.stopped ? '' : seq.stops.flush())
      stopped = flushed.stopped
    }
    const done: DoneEvent = {
      type: 'done',
      finishReason: eos || stopped ? 'stop' : 'length',
      usage: { promptTokens: input.promptIds.length, completionTokens: seq.generated.length },
      timing: {
        queueMs: (seq.admitted ?? now) - seq.submitted,
        firstTokenMs: seq.firstToken - seq.submitted,
        totalMs: now - seq.submitted,
      },
      text: tail,
    }
    seq.finished = true
    seq.push(done)
    this.release(seq)
  }

  private logprob(pick: Pick): NonNullable<TokenEvent['logprob']> {
    const describe = (token: number, logprob: number) => {
      const text = this.tokenizer.decode([token], false)
      return { token: text, logprob, bytes: [...Buffer.from(text, 'utf8')] }
    }
    return {
      ...describe(pick.token, pick.logprob as number),
      top: (pick.top ?? []).map((t) => describe(t.token, t.logprob)),
    }
  }

  /** Cancels every sequence and waits for the loop to stop. */
  async close(): Promise<void> {
    this.closed = true
    const closedError = modelNotReady(this.label, 'it was unloaded while this request ran')
    for (const queue of this.waiting.values()) for (const seq of queue) this.fail(seq, closedError)
    this.waiting.clear()
    this.waitingCount = 0
    for (const seq of this.running.slice()) this.fail(seq, closedError)
    await this.loop
    this.batch.clear()
  }
}
