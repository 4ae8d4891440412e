import { performance } from 'node:perf_hooks'
import type {
  DoneEvent,
  GenerateRequest,
  GenerationEvent,
  TextEngine,
  TokenEvent,
} from '../../core/generate/types.js'
import { RequestCancel } from '../../core/infer/cancel-signal.js'
import { Failure } from '../../shared/errors.js'

/** Told of token timing as the face sees it (TTFT from the request's start, the gaps after). */
export interface TokenTimingObserver {
  firstToken(seconds: number): void
  interToken(seconds: number): void
}

/** One sequence's event, tagged with the sequence (the choice index). */
export interface SequenceEvent {
  index: number
  event: GenerationEvent
}

/** A sequence run to its end: its text and token events, and how it finished. */
export interface FinishedSequence {
  text: string
  tokens: TokenEvent[]
  done: DoneEvent
}

type Pulled = { index: number; result?: IteratorResult<GenerationEvent>; error?: unknown }

/**
 * The sequences of one request (n choices, or several prompts) running at once on one engine, with
 * one cancellation for all of them. `start()` waits for every first event, so failures before any
 * token (a prompt past the context, a full queue) are thrown while an HTTP status can still say so;
 * `events()` then merges the sequences in arrival order. Leaving early (a client gone, an error)
 * cancels every sequence still running: the engine frees their KV cache at its next step.
 */
export class Generations {
  readonly cancel = new RequestCancel()
  private readonly iterators: AsyncIterator<GenerationEvent>[] = []
  private readonly heads: (IteratorResult<GenerationEvent> | undefined)[] = []
  private readonly lastTokenAt: number[] = []
  private readonly startedAt = performance.now()
  private stopped = false

  constructor(
    private readonly engine: TextEngine,
    private readonly requests: GenerateRequest[],
    private readonly timing?: TokenTimingObserver,
  ) {}

  get size(): number {
    return this.requests.length
  }

  /** Never rejects: a sequence's failure comes back as `error`, so no pull is left unhandled. */
  private pull(index: number): Promise<Pulled> {
    return this.iterators[index].next().then(
      (result) => {
        if (!result.done && result.value.type === 'token') this.observe(index)
        return { index, result }
      },
      (error: unknown) => ({ index, error }),
    )
  }

  private observe(index: number): void {
    const now = performance.now()
    const last = this.lastTokenAt[index]
    if (last === undefined) this.timing?.firstToken((now - this.startedAt) / 1000)
    else this.timing?.interToken((now - last) / 1000)
    this.lastTokenAt[index] = now
  }

  /**
   * Submits the sequences and waits for each one's first event; throws the first failure (the engine
   * refuses some requests at once, others at their first event) after cancelling the others.
   */
  async start(): Promise<void> {
    try {
      for (const request of this.requests)
        this.iterators.push(this.engine.generate({ ...request, signal: this.cancel })[Symbol.asyncIterator]())
    } catch (err) {
      this.stop()
      throw err
    }
    const firsts = await Promise.all(this.iterators.map((_, i) => this.pull(i)))
    const failed = firsts.find((p) => p.error !== undefined)
    if (failed) {
      this.stop()
      throw failed.error
    }
    for (const p of firsts) this.heads[p.index] = p.result
  }

  /** Every event of every sequence, in the order they come; call after start(). */
  async *events(): AsyncGenerator<SequenceEvent> {
    const pending = new Map<number, Promise<Pulled>>()
    const next = (p: Pulled): SequenceEvent | undefined => {
      if (p.error !== undefined) throw p.error
      if (!p.result || p.result.done) return undefined
      // Ask for the next event before handing this one on, so a slow reader never idles a sequence.
      if (p.result.value.type !== 'done') pending.set(p.index, this.pull(p.index))
      return { index: p.index, event: p.result.value }
    }
    try {
      for (const [index, result] of this.heads.entries()) {
        const event = next({ index, result })
        if (event) yield event
      }
      while (pending.size > 0) {
        const p = await Promise.race(pending.values())
        pending.delete(p.index)
        const event = next(p)
        if (event) yield event
      }
    } finally {
      if (pending.size > 0) this.stop()
    }
  }

  /** Runs every sequence to its end (non-streamed answers). */
  async collect(): Promise<FinishedSequence[]> {
    const texts = this.iterators.map(() => '')
    const tokens: TokenEvent[][] = this.iterators.map(() => [])
    const done: DoneEvent[] = []
    for await (const { index, event } of this.events()) {
      texts[index] += event.text
      if (event.type === 'token') tokens[index].push(event)
      else done[index] = event
    }
    return texts.map((text, i) => {
      if (!done[i])
        throw new Failure('BACKEND_FAILED', 'The text engine ended a sequence without finishing it.')
      return { text, tokens: tokens[i], done: done[i] }
    })
  }

  /** Cancels every sequence still running (idempotent). */
  stop(): void {
    if (this.stopped) return
    this.stopped = true
    this.cancel.abort()
    for (const iterator of this.iterators) {
      // A generator busy in next() finishes that first; the signal has already stopped it.
      iterator.return?.().catch(() => {})
    }
  }
}
