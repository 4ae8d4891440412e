import type { Context, Span } from '@opentelemetry/api'
import { HelixError } from '../../shared/errors.js'
import { endWithError, recordingSpan, startBatchSpan, startChildSpan } from '../tracing.js'
import { concatInputs, splitOutputs } from './batcher.js'
import type { CancelSignal } from './cancel-signal.js'
import { backendFailed, cancelled, inferTimeout, modelNotReady, QueueFullError } from './errors.js'
import type { PreparedRequest } from './input-validation.js'
import type { InferTiming, Tensor } from './types.js'

export interface SchedulerOptions {
  /** Model name (and version) for error messages. */
  model: string
  /** Largest batch to form; 0 or 1 runs every request alone. */
  maxBatchSize: number
  /** How long the oldest queued request may wait for a fuller batch. */
  maxQueueDelayMs: number
  /** Batch sizes worth dispatching at once without waiting (the largest triggers dispatch). */
  preferredBatchSizes?: number[]
  /** Requests waiting before new ones are refused with QUEUE_FULL. */
  maxQueueSize: number
  /** Deadline for requests that bring none, in ms (0 or absent: none). */
  defaultTimeoutMs?: number
  /** Batches that may run at once (the backend's instances). */
  concurrency: number
  /**
   * Hand each instance its next batch while the current one computes, when that batch is full
   * (backends that compute off the event loop, e.g. in worker threads): the instance starts it the
   * moment it is free instead of idling while the event loop answers the previous batch.
   */
  queueAhead?: boolean
  /** Runs one batch on the backend. */
  execute: (inputs: Tensor[], outputs?: string[]) => Promise<Tensor[]>
}

export interface ScheduledResult {
  outputs: Tensor[]
  timing: InferTiming
}

export interface SchedulerStats {
  queueDepth: number
  inFlightBatches: number
  batches: number
  requests: number
}

interface Pending {
  request: PreparedRequest
  enqueuedAt: number
  /** performance.now() after which the answer is a timeout (Infinity: none). */
  deadline: number
  timeoutMs: number
  state: 'queued' | 'running' | 'settled'
  resolve: (result: ScheduledResult) => void
  reject: (error: unknown) => void
  cleanup: () => void
  /** The request span's context (tracing on and sampled) and its open queue span. */
  trace?: Context
  queueSpan?: Span
}

const now = () => performance.now()

/**
 * One model version's queue and dynamic batcher (Triton's dynamic batcher): requests with the same
 * non-batch shapes are gathered until max_batch_size (or the largest preferred size) or until the
 * oldest has waited max_queue_delay_ms, run once on the backend, and split back. Requests with other
 * shapes stay queued for a batch of their own; nothing of two shapes is ever mixed.
 */
export class Scheduler {
  private queue: Pending[] = []
  private running = 0
  /** Items (batch rows) queued and in running batches: the load batches are cut from. */
  private queuedItems = 0
  private runningItems = 0
  private timer?: NodeJS.Timeout
  private timerDue = Number.POSITIVE_INFINITY
  private accepting = true
  private drainWaiters: (() => void)[] = []
  private batches = 0
  private requests = 0
  /** Smoothed compute time per batch, for Retry-After estimates. */
  private avgComputeMs = 0

  constructor(private readonly options: SchedulerOptions) {}

  get queueDepth(): number {
    return this.queue.length
  }

  /** The bound of the queue: beyond it requests get QUEUE_FULL (429). */
  get queueCapacity(): number {
    return this.options.maxQueueSize
  }

  stats(): SchedulerStats {
    return {
      queueDepth: this.queue.length,
      inFlightBatches: this.running,
      batches: this.batches,
      requests: this.requests,
    }
  }

  private get batching(): boolean {
    return this.options.maxBatchSize > 1
  }

  enqueue(
    request: PreparedRequest,
    options: { signal?: CancelSignal; timeoutMs?: number; trace?: Context } = {},
  ): Promise<ScheduledResult> {
    const { model } = this.options
    if (!this.accepting) return Promise.reject(modelNotReady(model, 'it is unloading'))
    if (options.signal?.aborted) return Promise.reject(cancelled(model))
    if (this.queue.length >= this.options.maxQueueSize) {
      return Promise.reject(
        new QueueFullError(
          `The queue of '${model}' is full (${this.options.maxQueueSize} waiting).`,
          this.retryAfterSeconds(),
        ),
      )
    }
    return new Promise<ScheduledResult>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.options.defaultTimeoutMs ?? 0
      let timer: NodeJS.Timeout | undefined
      const enqueuedAt = now()
      const pending: Pending = {
        request,
        enqueuedAt,
        deadline: timeoutMs > 0 ? enqueuedAt + timeoutMs : Number.POSITIVE_INFINITY,
        timeoutMs,
        state: 'queued',
        resolve: (result) => {
          if (pending.state === 'settled') return
          pending.state = 'settled'
          pending.cleanup()
          resolve(result)
        },
        reject: (error) => {
          if (pending.state === 'settled') return
          pending.state = 'settled'
          pending.cleanup()
          reject(error)
        },
        cleanup: () => {
          if (timer) clearTimeout(timer)
          options.signal?.removeEventListener('abort', onAbort)
        },
      }
      if (recordingSpan(options.trace)) {
        pending.trace = options.trace
        pending.queueSpan = startChildSpan('queue', options.trace as Context)
      }
      // A queued request that times out or is cancelled leaves the queue at once; a running one is
      // answered at once and its share of the batch result is dropped.
      const giveUp = (error: HelixError) => {
        if (pending.queueSpan?.isRecording()) endWithError(pending.queueSpan, error)
        if (pending.state === 'queued') this.remove(pending)
        pending.reject(error)
      }
      const onAbort = () => giveUp(cancelled(model))
      if (timeoutMs > 0)
        timer = setTimeout(
          () => giveUp(inferTimeout(model, timeoutMs, pending.state === 'running' ? 'running' : 'queued')),
          timeoutMs,
        )
      options.signal?.addEventListener('abort', onAbort, { once: true })
      this.queue.push(pending)
      this.queuedItems += request.batchSize
      this.requests++
      this.schedule()
    })
  }

  /** Stops taking requests and resolves once everything queued or running has finished. */
  drain(): Promise<void> {
    this.accepting = false
    this.schedule()
    if (this.idle()) return Promise.resolve()
    return new Promise((resolve) => this.drainWaiters.push(resolve))
  }

  /** Refuses everything still queued (after a drain timed out or on shutdown). */
  abort(reason: string): void {
    this.accepting = false
    this.queuedItems = 0
    for (const pending of this.queue.splice(0)) {
      pending.queueSpan?.end()
      pending.reject(modelNotReady(this.options.model, reason))
    }
    this.clearTimer()
    this.checkDrained()
  }

  private idle(): boolean {
    return this.queue.length === 0 && this.running === 0
  }

  private checkDrained(): void {
    if (!this.idle()) return
    for (const resolve of this.drainWaiters.splice(0)) resolve()
  }

  private remove(pending: Pending): void {
    const at = this.queue.indexOf(pending)
    if (at >= 0) {
      this.queue.splice(at, 1)
      this.queuedItems -= pending.request.batchSize
    }
    this.checkDrained()
  }

  private retryAfterSeconds(): number {
    const perBatch = this.batching ? this.options.maxBatchSize : 1
    const batchesAhead = Math.ceil(this.queue.length / perBatch)
    const ms = (batchesAhead * Math.max(this.avgComputeMs, 1)) / Math.max(1, this.options.concurrency)
    return Math.max(1, Math.ceil(ms / 1000))
  }

  /**
   * Times out queued requests whose deadline passed while a batch ran. An inline session holds the
   * event loop for its whole run, so their timers fire only after the answer is handled: without
   * this, the next batch would spend the backend on requests that have already timed out.
   */
  private expireOverdue(): void {
    const at = now()
    for (const overdue of this.queue.filter((p) => p.deadline <= at)) {
      overdue.queueSpan?.end()
      this.remove(overdue)
      overdue.reject(inferTimeout(this.options.model, overdue.timeoutMs, 'queued'))
    }
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = undefined
    this.timerDue = Number.POSITIVE_INFINITY
  }

  private armTimer(due: number): void {
    if (this.timer && this.timerDue <= due) return
    this.clearTimer()
    this.timerDue = due
    this.timer = setTimeout(
      () => {
        this.timer = undefined
        this.timerDue = Number.POSITIVE_INFINITY
        this.schedule()
      },
      Math.max(0, due - now()),
    )
  }

  /**
   * Dispatches every batch that is due while instances are free. While every instance is busy only
   * full batches go ahead (with queueAhead): the rest keeps gathering until an instance is free,
   * so load forms full batches instead of a stream of tiny ones.
   */
  private schedule(): void {
    const { concurrency } = this.options
    const limit = this.options.queueAhead ? 2 * concurrency : concurrency
    while (this.running < limit && this.queue.length > 0) {
      const batch = this.takeBatch(this.running >= concurrency)
      if (!batch) break
      this.running++
      void this.runBatch(batch)
    }
    if (this.queue.length === 0) this.clearTimer()
  }

  /**
   * The next batch if one is due now (`onlyFull`: only when it is full); otherwise arms the timer
   * for when the oldest request is due.
   */
  private takeBatch(onlyFull: boolean): Pending[] | undefined {
    const head = this.queue[0]
    if (!this.batching) {
      this.queue.shift()
      this.queuedItems -= head.request.batchSize
      return [head]
    }
    const cap = this.options.maxBatchSize
    const preferred = this.options.preferredBatchSizes?.filter((p) => p <= cap) ?? []
    const fullAt = preferred.length > 0 ? Math.max(...preferred) : this.doubleBuffered(cap)
    let available = 0
    for (const p of this.queue) {
      if (p.request.shapeKey === head.request.shapeKey) available += p.request.batchSize
      if (available >= fullAt) break
    }
    if (onlyFull && available < fullAt) return undefined
    const due = head.enqueuedAt + this.options.maxQueueDelayMs
    // While draining there is nobody left to wait for: run what is there.
    if (available < fullAt && now() < due && this.accepting) {
      this.armTimer(due)
      return undefined
    }
    let limit = Math.min(available, cap)
    if (preferred.length > 0) limit = Math.max(head.request.batchSize, ...preferred.filter((p) => p <= limit))
    const batch: Pending[] = []
    let size = 0
    for (const p of this.queue) {
      if (p.request.shapeKey !== head.request.shapeKey) continue
      if (size + p.request.batchSize > limit && batch.length > 0) continue
      batch.push(p)
      size += p.request.batchSize
      if (size >= limit) break
    }
    const taken = new Set(batch)
    this.queue = this.queue.filter((p) => !taken.has(p))
    this.queuedItems -= size
    return batch
  }

  /**
   * The batch size that counts as full. Under load with queueAhead (a batch running, or at least two
   * items per instance waiting), batches are cut so each instance has one computing and one ready:
   * the items in flight / (2 × instances), up to the cap. A batch holding every waiting client would
   * leave its instance idle while those clients get their answers and send again: PP-OCR cls at 32
   * clients on 2 instances served 1771 items/s at batches of 16 and 2879 at batches of 8
   * (bench/README.md). Light load, or no queueAhead: the cap counts and max_queue_delay_ms is
   * waited for.
   */
  private doubleBuffered(cap: number): number {
    if (!this.options.queueAhead) return cap
    const perInstance = 2 * this.options.concurrency
    const inFlight = this.queuedItems + this.runningItems
    if (this.running === 0 && inFlight < perInstance) return cap
    return Math.min(cap, Math.max(1, Math.ceil(inFlight / perInstance)))
  }

  /**
   * Tracing (only for batches holding a sampled request): ends the queue spans, starts the batch's
   * span (linking every traced request it serves) and a compute span under each request.
   */
  private batchSpans(batch: Pending[], batchSize: number): Span[] | undefined {
    if (!batch.some((p) => p.trace)) return undefined
    const traced = batch.filter((p) => p.trace)
    const spans: Span[] = []
    for (const p of traced) {
      p.queueSpan?.end()
      spans.push(startChildSpan('compute', p.trace as Context))
    }
    spans.push(
      startBatchSpan(
        this.options.model,
        traced.map((p) => p.trace as Context),
        { 'helix.batch_size': batchSize, 'helix.batch_requests': batch.length },
      ),
    )
    return spans
  }

  private async runBatch(batch: Pending[]): Promise<void> {
    const started = now()
    for (const p of batch) p.state = 'running'
    const batchSize = batch.reduce((n, p) => n + p.request.batchSize, 0)
    this.runningItems += batchSize
    const spans = this.batchSpans(batch, batchSize)
    try {
      const wanted = unionOutputs(batch)
      const outputs = await this.options.execute(concatInputs(batch.map((p) => p.request)), wanted)
      const computeMs = now() - started
      this.avgComputeMs = this.avgComputeMs === 0 ? computeMs : this.avgComputeMs * 0.8 + computeMs * 0.2
      const split = splitOutputs(
        outputs,
        batch.map((p) => p.request.batchSize),
      )
      const finished = now()
      if (spans) for (const span of spans) span.end()
      for (const [i, p] of batch.entries()) {
        // Inline sessions (worker_threads: false) compute on the main thread, so deadline timers
        // cannot fire during their runs; check here so a late answer is still a timeout, as promised.
        if (finished >= p.deadline) {
          p.reject(inferTimeout(this.options.model, p.timeoutMs, 'running'))
          continue
        }
        const own = p.request.outputs
        p.resolve({
          // Each request gets the outputs it named, in its order (all, in the model's order, when none).
          outputs: own ? own.flatMap((name) => split[i].filter((t) => t.name === name)) : split[i],
          timing: { queueMs: started - p.enqueuedAt, computeMs, batchSize },
        })
      }
    } catch (err) {
      const error = err instanceof HelixError ? err : backendFailed(this.options.model, err)
      if (spans) for (const span of spans) endWithError(span, error)
      for (const p of batch) p.reject(error)
    } finally {
      this.batches++
      this.running--
      this.runningItems -= batchSize
      this.expireOverdue()
      this.schedule()
      this.checkDrained()
    }
  }
}

/** The outputs a batch must compute: all when any request wants all. */
function unionOutputs(batch: Pending[]): string[] | undefined {
  if (batch.length === 1) return batch[0].request.outputs
  const names = new Set<string>()
  for (const p of batch) {
    if (!p.request.outputs) return undefined
    for (const n of p.request.outputs) names.add(n)
  }
  return [...names]
}
