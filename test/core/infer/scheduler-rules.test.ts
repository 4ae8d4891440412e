import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { RequestCancel } from '../../../src/core/infer/cancel-signal.js'
import { invalidInput, QueueFullError } from '../../../src/core/infer/errors.js'
import { hasBatchDimension, prepareRequest } from '../../../src/core/infer/input-validation.js'
import { type ScheduledResult, Scheduler, type SchedulerOptions } from '../../../src/core/infer/scheduler.js'
import type { Tensor, TensorSpec } from '../../../src/core/infer/types.js'
import { errorAnswer } from '../../../src/http/plugins/errors.js'
import { f32, rejection } from './service-helpers.js'

// The batching rules of the scheduler one by one, on a fake clock and a backend whose batches the test
// finishes by hand. vitest's fake timers also fake performance.now(), the scheduler's clock, so every
// wait below is exact. The wall-clock tests on onnxruntime are scheduler.test.ts and
// scheduler-queue-ahead.test.ts.

/** A model that batches on dim 0 of everything: y = x + 100, first = each row's first element. */
const SIGNATURE: { inputs: TensorSpec[]; outputs: TensorSpec[] } = {
  inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, -1] }],
  outputs: [
    { name: 'y', datatype: 'FP32', shape: [-1, -1] },
    { name: 'first', datatype: 'FP32', shape: [-1] },
  ],
}
const MODEL_MAX_BATCH = 8

/** A request of `rows` rows of `width` values, all equal to `id`, so each batch can be read back. */
function request(id: number, options: { rows?: number; width?: number; outputs?: string[] } = {}) {
  const { rows = 1, width = 2, outputs } = options
  return prepareRequest(
    'm',
    SIGNATURE,
    { inputs: [f32('x', [rows, width], new Array(rows * width).fill(id))], outputs },
    { batchable: hasBatchDimension(SIGNATURE), maxBatchSize: MODEL_MAX_BATCH },
  )
}

/** What the model answers for x. */
function compute(x: Tensor): Tensor[] {
  const data = x.data as Float32Array
  const [rows, width] = x.shape
  return [
    f32(
      'y',
      x.shape,
      data.map((v) => v + 100),
    ),
    f32(
      'first',
      [rows],
      Array.from({ length: rows }, (_, r) => data[r * width]),
    ),
  ]
}

interface BatchCall {
  /** The id of each row of x, in batch order. */
  ids: number[]
  shape: number[]
  outputs?: string[]
  /** Fake time at which the batch reached the backend. */
  at: number
  /** Answers the batch as the model does. */
  finish(): void
  /** Answers the batch with these tensors. */
  answer(outputs: Tensor[]): void
  fail(error: unknown): void
}

/** A backend that records each batch and answers it only when the test says so. */
function gatedBackend() {
  const calls: BatchCall[] = []
  const execute = (inputs: Tensor[], outputs?: string[]) =>
    new Promise<Tensor[]>((resolve, reject) => {
      const [x] = inputs
      const data = x.data as Float32Array
      const [rows, width] = x.shape
      calls.push({
        ids: Array.from({ length: rows }, (_, r) => data[r * width]),
        shape: x.shape,
        outputs,
        at: performance.now(),
        finish: () => resolve(compute(x)),
        answer: resolve,
        fail: reject,
      })
    })
  return { calls, execute, batches: () => calls.map((c) => c.ids) }
}

function setup(options: Partial<SchedulerOptions> = {}) {
  const backend = gatedBackend()
  const scheduler = new Scheduler({
    model: 'm',
    maxBatchSize: 4,
    maxQueueDelayMs: 10,
    maxQueueSize: 100,
    concurrency: 1,
    execute: backend.execute,
    ...options,
  })
  return { scheduler, backend }
}

/** A promise's outcome as it stands, readable without awaiting it. */
function track<T>(promise: Promise<T>) {
  const state: { settled: boolean; value?: T; error?: Error & { code?: string } } = { settled: false }
  promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error) => Object.assign(state, { settled: true, error }),
  )
  return state
}

/** Lets every promise continuation run (setImmediate is not faked). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

/** Each output of an answer by name: its shape and values. */
const contents = (result: ScheduledResult) =>
  Object.fromEntries(result.outputs.map((t) => [t.name, [t.shape, Array.from(t.data as Float32Array)]]))

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
})
afterEach(() => {
  vi.useRealTimers()
})

describe('Scheduler batching rules (fake clock, gated backend)', () => {
  it('keeps a lone request exactly max_queue_delay_ms, counted from the oldest request', async () => {
    const { scheduler, backend } = setup({ maxBatchSize: 4, maxQueueDelayMs: 10 })
    expect(performance.now()).toBe(0)
    const first = scheduler.enqueue(request(1))
    vi.advanceTimersByTime(6)
    // A later arrival joins the wait; it does not restart it.
    const second = scheduler.enqueue(request(2))
    vi.advanceTimersByTime(3)
    expect(backend.calls).toHaveLength(0)
    expect(scheduler.stats()).toEqual({ queueDepth: 2, inFlightBatches: 0, batches: 0, requests: 2 })
    vi.advanceTimersByTime(1)
    expect(backend.batches()).toEqual([[1, 2]])
    expect(backend.calls[0]).toMatchObject({ at: 10, shape: [2, 2], outputs: undefined })
    expect(scheduler.stats()).toEqual({ queueDepth: 0, inFlightBatches: 1, batches: 0, requests: 2 })
    vi.advanceTimersByTime(3)
    backend.calls[0].finish()
    const [a, b] = await Promise.all([first, second])
    expect(a.timing).toEqual({ queueMs: 10, computeMs: 3, batchSize: 2 })
    expect(b.timing).toEqual({ queueMs: 4, computeMs: 3, batchSize: 2 })
    expect(contents(a)).toEqual({
      y: [
        [1, 2],
        [101, 101],
      ],
      first: [[1], [1]],
    })
    expect(contents(b)).toEqual({
      y: [
        [1, 2],
        [102, 102],
      ],
      first: [[1], [2]],
    })
    expect(scheduler.stats()).toEqual({ queueDepth: 0, inFlightBatches: 0, batches: 1, requests: 2 })
  })

  it('dispatches a full batch at once and never exceeds max_batch_size, filling up with smaller requests', async () => {
    const { scheduler, backend } = setup({ maxBatchSize: 4 })
    for (const id of [1, 2, 3]) void scheduler.enqueue(request(id))
    expect(backend.calls).toHaveLength(0)
    void scheduler.enqueue(request(4))
    expect(backend.batches()).toEqual([[1, 2, 3, 4]])
    expect(backend.calls[0].at).toBe(0)
    // Requests are never split: 3 + 2 rows are more than 4, so the 1-row request behind them fills
    // the batch and the 2-row one waits for the next.
    void scheduler.enqueue(request(5, { rows: 3 }))
    void scheduler.enqueue(request(6, { rows: 2 }))
    void scheduler.enqueue(request(7))
    backend.calls[0].finish()
    await settle()
    expect(backend.batches()).toEqual([
      [1, 2, 3, 4],
      [5, 5, 5, 7],
    ])
    expect(scheduler.queueDepth).toBe(1)
  })

  it('runs every request alone and without waiting when batching is off (max_batch_size 0 or 1)', () => {
    for (const maxBatchSize of [0, 1]) {
      const { scheduler, backend } = setup({ maxBatchSize, concurrency: 4, maxQueueDelayMs: 10 })
      for (const id of [1, 2, 3]) void scheduler.enqueue(request(id))
      expect(backend.batches()).toEqual([[1], [2], [3]])
      expect(backend.calls.map((c) => c.at)).toEqual([0, 0, 0])
    }
  })

  it('dispatches at the largest preferred batch size at once and cuts due batches to preferred sizes', async () => {
    // 16 is above max_batch_size and does not count.
    const { scheduler, backend } = setup({ maxBatchSize: 8, preferredBatchSizes: [2, 4, 16], concurrency: 2 })
    const first = [1, 2, 3].map((id) => scheduler.enqueue(request(id)))
    expect(backend.calls).toHaveLength(0)
    first.push(scheduler.enqueue(request(4)))
    expect(backend.batches()).toEqual([[1, 2, 3, 4]])
    backend.calls[0].finish()
    await Promise.all(first)
    for (const id of [5, 6, 7]) void scheduler.enqueue(request(id))
    vi.advanceTimersByTime(9)
    expect(backend.calls).toHaveLength(1)
    vi.advanceTimersByTime(1)
    // Three due: the largest preferred size that fits (2), then the one left over alone.
    expect(backend.batches().slice(1)).toEqual([[5, 6], [7]])
    expect(backend.calls.slice(1).map((c) => c.at)).toEqual([10, 10])

    // Only preferred sizes above the cap: max_batch_size is what counts as full.
    const capped = setup({ maxBatchSize: 3, preferredBatchSizes: [16] })
    for (const id of [1, 2, 3]) void capped.scheduler.enqueue(request(id))
    expect(capped.backend.batches()).toEqual([[1, 2, 3]])
  })

  it('never mixes requests whose non-batch dimensions differ', async () => {
    const { scheduler, backend } = setup({ maxBatchSize: 4 })
    const answers = [
      scheduler.enqueue(request(1, { width: 2 })),
      scheduler.enqueue(request(2, { width: 3 })),
      scheduler.enqueue(request(3, { width: 2 })),
      scheduler.enqueue(request(4, { width: 3 })),
      scheduler.enqueue(request(5, { width: 2 })),
    ]
    vi.advanceTimersByTime(10)
    expect(backend.batches()).toEqual([[1, 3, 5]])
    expect(backend.calls[0].shape).toEqual([3, 2])
    expect(scheduler.queueDepth).toBe(2)
    vi.advanceTimersByTime(2)
    backend.calls[0].finish()
    await settle()
    // The other shape was due too: it goes the moment the instance is free.
    expect(backend.batches()[1]).toEqual([2, 4])
    expect(backend.calls[1]).toMatchObject({ shape: [2, 3], at: 12 })
    backend.calls[1].finish()
    const results = await Promise.all(answers)
    expect(results.map((r) => r.outputs[0].shape)).toEqual([
      [1, 2],
      [1, 3],
      [1, 2],
      [1, 3],
      [1, 2],
    ])
    expect(results.map((r) => r.timing.batchSize)).toEqual([3, 2, 3, 2, 3])
  })

  it('refuses requests beyond the queue bound with QUEUE_FULL (429) and a Retry-After from the work ahead', async () => {
    const { scheduler, backend } = setup({ maxBatchSize: 2, maxQueueSize: 3 })
    expect(scheduler.queueCapacity).toBe(3)
    const early = [scheduler.enqueue(request(1)), scheduler.enqueue(request(2))]
    // Before any batch has run there is no compute time to go by: the minimum, 1 s.
    for (const id of [3, 4, 5]) void scheduler.enqueue(request(id))
    const refusedEarly = await rejection(scheduler.enqueue(request(6)))
    expect(refusedEarly.retryAfterSeconds).toBe(1)
    vi.advanceTimersByTime(4000)
    backend.calls[0].finish()
    await Promise.all(early)
    // [3, 4] is running now; 5, 7 and 8 wait (full but the one instance is busy).
    expect(backend.batches()).toEqual([
      [1, 2],
      [3, 4],
    ])
    void scheduler.enqueue(request(7))
    void scheduler.enqueue(request(8))
    expect(scheduler.stats()).toMatchObject({ queueDepth: 3, inFlightBatches: 1 })
    const refused = await rejection(scheduler.enqueue(request(9)))
    expect(refused).toBeInstanceOf(QueueFullError)
    // Three waiting are ceil(3 / 2) = 2 batches of 4000 ms each on one instance.
    expect([refused.code, refused.message, refused.retryAfterSeconds]).toEqual([
      'QUEUE_FULL',
      "The queue of 'm' is full (3 waiting).",
      8,
    ])
    expect(errorAnswer(refused)).toMatchObject({ status: 429, retryAfter: 8 })
    expect(scheduler.stats().requests).toBe(7)
  })

  it('holds batches back while every instance is busy and dispatches one the moment an instance is free', async () => {
    const { scheduler, backend } = setup({ maxBatchSize: 2, concurrency: 2 })
    const answers = [1, 2, 3, 4, 5, 6].map((id) => scheduler.enqueue(request(id)))
    expect(backend.batches()).toEqual([
      [1, 2],
      [3, 4],
    ])
    // [5, 6] is full and long due, but both instances are busy.
    vi.advanceTimersByTime(50)
    expect(scheduler.stats()).toMatchObject({ queueDepth: 2, inFlightBatches: 2 })
    backend.calls[1].finish()
    await settle()
    expect(backend.batches()[2]).toEqual([5, 6])
    expect(backend.calls[2].at).toBe(50)
    backend.calls[0].finish()
    backend.calls[2].finish()
    expect((await Promise.all(answers)).map((r) => r.timing.queueMs)).toEqual([0, 0, 0, 0, 50, 50])
  })

  it('with queueAhead hands the next batch over while one computes, cut to the items in flight / (2 × instances)', async () => {
    const { scheduler, backend } = setup({ maxBatchSize: 8, concurrency: 1, queueAhead: true })
    const answers = [scheduler.enqueue(request(1))]
    // Light load (nothing running, fewer than two items per instance): the classic delay.
    vi.advanceTimersByTime(9)
    expect(backend.calls).toHaveLength(0)
    vi.advanceTimersByTime(1)
    expect(backend.batches()).toEqual([[1]])
    // One computing: two items in flight on one instance make batches of ceil(2 / 2) = 1, handed
    // over at once, so the instance has its next batch ready.
    answers.push(scheduler.enqueue(request(2)))
    expect(backend.batches()).toEqual([[1], [2]])
    expect(backend.calls[1].at).toBe(10)
    // One computing and one ready: the rest gathers, however long it waits.
    for (const id of [3, 4, 5, 6, 7]) answers.push(scheduler.enqueue(request(id)))
    vi.advanceTimersByTime(100)
    expect(scheduler.stats()).toMatchObject({ queueDepth: 5, inFlightBatches: 2 })
    // [1] done: six in flight ([2] and five waiting) make ceil(6 / 2) = 3, handed over the same
    // instant while [2] computes.
    backend.calls[0].finish()
    await settle()
    expect(backend.batches().slice(2)).toEqual([[3, 4, 5]])
    expect(backend.calls[2].at).toBe(110)
    // [2] done: [3, 4, 5] computes and two wait, fewer than ceil(5 / 2) = 3: they keep gathering.
    backend.calls[1].finish()
    await settle()
    expect(backend.calls).toHaveLength(3)
    expect(scheduler.queueDepth).toBe(2)
    // The instance is free with two items in flight: one computes and one is ready, a request each.
    backend.calls[2].finish()
    await settle()
    expect(backend.batches().slice(3)).toEqual([[6], [7]])
    backend.calls[3].finish()
    backend.calls[4].finish()
    const results = await Promise.all(answers)
    expect(results.map((r) => r.timing.batchSize)).toEqual([1, 1, 3, 3, 3, 1, 1])
    expect(results.map((r) => (r.outputs[0].data as Float32Array)[0])).toEqual([
      101, 102, 103, 104, 105, 106, 107,
    ])
  })

  it('without queueAhead hands nothing over while the instance computes, not even a full batch', async () => {
    const { scheduler, backend } = setup({ maxBatchSize: 2, concurrency: 1 })
    const answers = [1, 2, 3, 4].map((id) => scheduler.enqueue(request(id)))
    expect(backend.batches()).toEqual([[1, 2]])
    vi.advanceTimersByTime(5)
    backend.calls[0].finish()
    await settle()
    expect(backend.batches()).toEqual([
      [1, 2],
      [3, 4],
    ])
    expect(backend.calls[1].at).toBe(5)
    backend.calls[1].finish()
    await Promise.all(answers)
  })

  it('drops a cancelled queued request before it reaches the backend', async () => {
    const { scheduler, backend } = setup({ maxBatchSize: 4 })
    const cancel = new RequestCancel()
    const answers = [scheduler.enqueue(request(1)), scheduler.enqueue(request(3))]
    const cancelled = scheduler.enqueue(request(2), { signal: cancel })
    vi.advanceTimersByTime(4)
    cancel.abort()
    const error = await rejection(cancelled)
    expect([error.code, error.message]).toEqual([
      'CANCELLED',
      "Inference on 'm' was cancelled by the client.",
    ])
    expect(scheduler.queueDepth).toBe(2)
    vi.advanceTimersByTime(6)
    expect(backend.batches()).toEqual([[1, 3]])
    backend.calls[0].finish()
    const results = await Promise.all(answers)
    expect(results.map((r) => Array.from(r.outputs[1].data as Float32Array))).toEqual([[1], [3]])

    // An aborted signal is refused before it is queued or counted; a lone cancelled request leaves
    // nothing to run.
    const before = scheduler.stats().requests
    const aborted = new RequestCancel()
    aborted.abort()
    expect((await rejection(scheduler.enqueue(request(4), { signal: aborted }))).code).toBe('CANCELLED')
    const alone = new RequestCancel()
    const lone = track(scheduler.enqueue(request(5), { signal: alone }))
    alone.abort()
    vi.advanceTimersByTime(100)
    await settle()
    expect(lone.error?.code).toBe('CANCELLED')
    expect(backend.calls).toHaveLength(1)
    expect(scheduler.stats()).toMatchObject({ queueDepth: 0, requests: before + 1 })
  })

  it('answers a cancelled running request at once and the rest of its batch normally', async () => {
    const { scheduler, backend } = setup({ maxBatchSize: 2 })
    const cancel = new RequestCancel()
    const kept = scheduler.enqueue(request(1))
    const cancelled = scheduler.enqueue(request(2), { signal: cancel })
    expect(backend.batches()).toEqual([[1, 2]])
    cancel.abort()
    expect((await rejection(cancelled)).code).toBe('CANCELLED')
    expect(scheduler.stats().inFlightBatches).toBe(1)
    backend.calls[0].finish()
    const result = await kept
    expect(contents(result)).toEqual({
      y: [
        [1, 2],
        [101, 101],
      ],
      first: [[1], [1]],
    })
    expect(result.timing.batchSize).toBe(2)
    // Cancelling after the answer changes nothing.
    cancel.abort()
    const next = [scheduler.enqueue(request(3)), scheduler.enqueue(request(4))]
    backend.calls[1].finish()
    expect((await Promise.all(next)).map((r) => r.timing.batchSize)).toEqual([2, 2])
  })

  it('times out a queued request at its deadline and never runs it; defaultTimeoutMs applies to the rest', async () => {
    const { scheduler, backend } = setup({ maxBatchSize: 4, maxQueueDelayMs: 10, defaultTimeoutMs: 7 })
    const own = track(scheduler.enqueue(request(1), { timeoutMs: 5 }))
    const byDefault = track(scheduler.enqueue(request(2)))
    const longer = scheduler.enqueue(request(3), { timeoutMs: 50 })
    vi.advanceTimersByTime(4)
    await settle()
    expect(own.settled).toBe(false)
    vi.advanceTimersByTime(1)
    await settle()
    expect([own.error?.code, own.error?.message]).toEqual([
      'INFER_TIMEOUT',
      "Inference on 'm' timed out after 5 ms (queued).",
    ])
    expect(scheduler.queueDepth).toBe(2)
    vi.advanceTimersByTime(1)
    await settle()
    expect(byDefault.settled).toBe(false)
    vi.advanceTimersByTime(1)
    await settle()
    expect(byDefault.error?.message).toBe("Inference on 'm' timed out after 7 ms (queued).")
    vi.advanceTimersByTime(3)
    expect(backend.batches()).toEqual([[3]])
    backend.calls[0].finish()
    expect((await longer).timing.queueMs).toBe(10)
  })

  it('times out a running request at its deadline without disturbing its batch', async () => {
    const { scheduler, backend } = setup({ maxBatchSize: 2 })
    const late = track(scheduler.enqueue(request(1), { timeoutMs: 5 }))
    const other = scheduler.enqueue(request(2))
    expect(backend.batches()).toEqual([[1, 2]])
    vi.advanceTimersByTime(5)
    await settle()
    expect(late.error?.message).toBe("Inference on 'm' timed out after 5 ms (running).")
    vi.advanceTimersByTime(1)
    backend.calls[0].finish()
    expect((await other).timing).toEqual({ queueMs: 0, computeMs: 6, batchSize: 2 })
  })

  // An inline session (worker_threads: false) holds the event loop while it computes: its answer is
  // handled before the timers that came due meanwhile. Here the answer comes in a timer that runs
  // just before the deadline timers of the same instant, which is the same order of events.
  it('treats an answer that comes after a deadline whose timer has not fired as a timeout', async () => {
    const { scheduler, backend } = setup({ maxBatchSize: 2 })
    setTimeout(() => backend.calls[0].finish(), 5)
    const late = track(scheduler.enqueue(request(1), { timeoutMs: 5 }))
    const other = scheduler.enqueue(request(2))
    await vi.advanceTimersByTimeAsync(5)
    expect(late.error?.message).toBe("Inference on 'm' timed out after 5 ms (running).")
    expect((await other).timing).toEqual({ queueMs: 0, computeMs: 5, batchSize: 2 })
  })

  it('does not run a queued request whose deadline passed while an inline batch held the event loop', async () => {
    const { scheduler, backend } = setup({ maxBatchSize: 0 })
    const first = scheduler.enqueue(request(1))
    // As above: [1]'s answer is handled before the deadline timer of 2, due the same instant.
    setTimeout(() => backend.calls[0].finish(), 5)
    const expired = track(scheduler.enqueue(request(2), { timeoutMs: 5 }))
    await vi.advanceTimersByTimeAsync(5)
    await first
    expect(expired.error?.message).toBe("Inference on 'm' timed out after 5 ms (queued).")
    expect(backend.batches()).toEqual([[1]])
    expect(scheduler.stats()).toMatchObject({ queueDepth: 0, inFlightBatches: 0 })
  })

  it('fails every request of a batch the backend fails, and keeps serving', async () => {
    const { scheduler, backend } = setup({ maxBatchSize: 2 })
    const failed = [scheduler.enqueue(request(1)), scheduler.enqueue(request(2))]
    backend.calls[0].fail(new Error('CUDA out of memory\n    at Session.run'))
    for (const error of await Promise.all(failed.map(rejection))) {
      expect([error.code, error.message]).toEqual([
        'BACKEND_FAILED',
        "Model 'm' failed to run: CUDA out of memory",
      ])
    }
    // HelixErrors of the backend pass through unchanged.
    const refused = [scheduler.enqueue(request(3)), scheduler.enqueue(request(4))]
    const own = invalidInput('the backend said no')
    backend.calls[1].fail(own)
    for (const error of await Promise.all(refused.map(rejection))) expect(error).toBe(own)
    // An answer whose dim 0 is not the batch cannot be split back: the batch fails.
    const unsplittable = [scheduler.enqueue(request(5)), scheduler.enqueue(request(6))]
    backend.calls[2].answer([f32('y', [1, 2], [0, 0])])
    for (const error of await Promise.all(unsplittable.map(rejection))) {
      expect(error.message).toBe(
        "Model 'm' failed to run: output 'y' has 1 rows for a batch of 2; it cannot be split",
      )
    }
    const served = [scheduler.enqueue(request(7)), scheduler.enqueue(request(8))]
    backend.calls[3].finish()
    expect((await Promise.all(served)).map((r) => (r.outputs[0].data as Float32Array)[0])).toEqual([107, 108])
    expect(scheduler.stats()).toEqual({ queueDepth: 0, inFlightBatches: 0, batches: 4, requests: 8 })
  })

  it('computes the union of the outputs a batch asks for and gives each request its own', async () => {
    const { scheduler, backend } = setup({ maxBatchSize: 2 })
    const [y, first] = [
      scheduler.enqueue(request(1, { outputs: ['y'] })),
      scheduler.enqueue(request(2, { outputs: ['first'] })),
    ]
    expect(backend.calls[0].outputs).toEqual(['y', 'first'])
    backend.calls[0].finish()
    expect((await y).outputs.map((t) => t.name)).toEqual(['y'])
    expect((await first).outputs.map((t) => t.name)).toEqual(['first'])
    // One request that wants everything makes the batch compute everything.
    const [some, all] = [scheduler.enqueue(request(3, { outputs: ['first'] })), scheduler.enqueue(request(4))]
    expect(backend.calls[1].outputs).toBeUndefined()
    backend.calls[1].finish()
    expect((await some).outputs.map((t) => t.name)).toEqual(['first'])
    expect((await all).outputs.map((t) => t.name)).toEqual(['y', 'first'])
    const lone = scheduler.enqueue(request(5, { outputs: ['first'] }))
    vi.advanceTimersByTime(10)
    expect(backend.calls[2].outputs).toEqual(['first'])
    backend.calls[2].finish()
    expect((await lone).outputs.map((t) => t.name)).toEqual(['first'])
  })

  it('drains: refuses new requests, runs what is queued without waiting, resolves when all have finished', async () => {
    const idle = setup()
    await idle.scheduler.drain()
    const refused = await rejection(idle.scheduler.enqueue(request(1)))
    expect([refused.code, refused.message]).toEqual([
      'MODEL_NOT_READY',
      "Model 'm' is not ready: it is unloading.",
    ])

    const { scheduler, backend } = setup({ maxBatchSize: 4, maxQueueDelayMs: 10 })
    const answers = [1, 2, 3, 4, 5].map((id) => scheduler.enqueue(request(id)))
    const drained = track(scheduler.drain())
    expect((await rejection(scheduler.enqueue(request(6)))).code).toBe('MODEL_NOT_READY')
    vi.advanceTimersByTime(3)
    backend.calls[0].finish()
    await settle()
    // Nobody is left to wait for: 5 goes the moment the instance is free, not at its delay (10).
    expect(backend.batches()[1]).toEqual([5])
    expect(backend.calls[1].at).toBe(3)
    expect(drained.settled).toBe(false)
    backend.calls[1].finish()
    await settle()
    expect(drained.settled).toBe(true)
    expect((await Promise.all(answers)).map((r) => r.timing.batchSize)).toEqual([4, 4, 4, 4, 1])
  })

  it('aborts: refuses what is queued, lets running batches finish, then resolves the drain', async () => {
    const { scheduler, backend } = setup({ maxBatchSize: 4 })
    const running = [1, 2, 3, 4].map((id) => scheduler.enqueue(request(id)))
    const queued = scheduler.enqueue(request(5))
    const drained = track(scheduler.drain())
    scheduler.abort('shutting down')
    expect((await rejection(queued)).message).toBe("Model 'm' is not ready: shutting down.")
    expect(scheduler.stats()).toMatchObject({ queueDepth: 0, inFlightBatches: 1 })
    await settle()
    expect(drained.settled).toBe(false)
    backend.calls[0].finish()
    expect(await Promise.all(running)).toHaveLength(4)
    await settle()
    expect(drained.settled).toBe(true)
    expect(backend.calls).toHaveLength(1)
  })
})
