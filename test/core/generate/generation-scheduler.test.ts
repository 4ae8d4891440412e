import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { GenerationEvent, TextEngine } from '../../../src/core/generate/types.js'
import { RequestCancel } from '../../../src/core/infer/cancel-signal.js'
import { createModelService, type HelixModelService } from '../../../src/core/infer/model-service.js'
import { QWEN3_IM_END_ID, writeChatModel } from '../../helpers/text-models.js'
import { disposeReferences, referenceGreedy } from '../../helpers/transformers-reference.js'

const LONG =
  'Tell me a long story about a lighthouse keeper who counts the ships that pass every night, ' +
  'and about the storm that came in the autumn when the lamp went out and the radio was silent.'

describe('the generation scheduler', () => {
  let root: string
  let service: HelixModelService
  let dir: string
  let engine: TextEngine

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'helix-sched-'))
    dir = join(root, 'models', 'chat', '1')
    await writeChatModel(dir, { seed: 31 })
    // Two running sequences, three waiting, prefill passes of 16 tokens (long prompts go in chunks).
    await writeFile(
      join(root, 'models', 'chat', 'config.yaml'),
      'text:\n  max_sequences: 2\n  max_waiting: 3\n  max_batch_tokens: 16\n',
    )
    service = await createModelService({ repositoryDir: join(root, 'models'), defaultDevice: 'cpu' })
    engine = (await service.text({ model: 'chat' })).engine
  }, 60_000)

  afterAll(async () => {
    await service?.close()
    await disposeReferences()
    if (root) await rm(root, { recursive: true, force: true })
  })

  async function tokens(events: AsyncIterable<GenerationEvent>, onFirst?: () => void): Promise<number[]> {
    const ids: number[] = []
    for await (const event of events) {
      if (event.type !== 'token') continue
      if (ids.length === 0) onFirst?.()
      ids.push(event.tokenId)
    }
    return ids
  }

  it('prefills a prompt longer than the token budget in chunks, with the same greedy tokens', async () => {
    const messages = [{ role: 'user', content: LONG }]
    const promptTokens = engine.encode(engine.renderChat(messages)).length
    expect(promptTokens).toBeGreaterThan(2 * 16)
    const got = await tokens(engine.generate({ messages, sampling: { temperature: 0, maxTokens: 12 } }))
    const reference = await referenceGreedy(dir, { messages, maxNewTokens: 12 })
    expect(got).toEqual(reference.at(-1) === QWEN3_IM_END_ID ? reference.slice(0, -1) : reference)
  }, 60_000)

  it('admits waiting requests round-robin by key: one busy key cannot starve another', async () => {
    const order: string[] = []
    const run = (key: string, i: number) =>
      tokens(
        engine.generate({
          messages: [{ role: 'user', content: `request ${i}` }],
          key,
          sampling: { temperature: 0, maxTokens: 6, ignoreEos: true },
        }),
        () => order.push(key),
      )
    // Key a fills both places and the waiting queue's first slots; key b asks last.
    const busy = [run('a', 1), run('a', 2), run('a', 3), run('a', 4)]
    const other = run('b', 5)
    await Promise.all([...busy, other])
    // b gets the first place that frees up, ahead of a's 3rd and 4th request.
    expect(order.indexOf('b')).toBe(2)
  }, 60_000)

  it('refuses past the waiting queue with QUEUE_FULL and a Retry-After estimate', async () => {
    const start = (i: number) => {
      const events = engine
        .generate({
          messages: [{ role: 'user', content: `queued ${i}` }],
          sampling: { temperature: 0, maxTokens: 8, ignoreEos: true },
        })
        [Symbol.asyncIterator]()
      return events.next().then(async (first) => {
        while (!(await events.next()).done);
        return first
      })
    }
    // 2 running + 3 waiting fit; the 6th is refused.
    const accepted = [0, 1, 2, 3, 4].map(start)
    let refused: unknown
    try {
      start(5)
    } catch (err) {
      refused = err
    }
    expect(refused).toMatchObject({ code: 'QUEUE_FULL' })
    expect((refused as { retryAfterSeconds: number }).retryAfterSeconds).toBeGreaterThanOrEqual(1)
    for (const first of await Promise.all(accepted)) expect(first.value?.type).toBe('token')
  }, 60_000)

  it('reports running and waiting sequences and the KV cache in use', async () => {
    const stats = () => (engine as unknown as { stats(): Record<string, number> }).stats()
    expect(stats()).toMatchObject({ running: 0, waiting: 0 })
    const seen: Record<string, number>[] = []
    await Promise.all(
      [1, 2, 3].map((i) =>
        tokens(
          engine.generate({
            messages: [{ role: 'user', content: `stats ${i}` }],
            sampling: { temperature: 0, maxTokens: 4, ignoreEos: true },
          }),
          () => seen.push(stats()),
        ),
      ),
    )
    expect(Math.max(...seen.map((s) => s.running ?? 0))).toBe(2)
    expect(Math.max(...seen.map((s) => s.kvCacheBytes ?? 0))).toBeGreaterThan(0)
    expect(stats()).toMatchObject({ running: 0, waiting: 0 })
  }, 60_000)

  it('a waiting request whose client went away leaves the queue without being read or prefilled', async () => {
    const stats = () => (engine as unknown as { stats(): Record<string, number> }).stats()
    const busy = [1, 2].map((i) =>
      tokens(
        engine.generate({
          messages: [{ role: 'user', content: `busy ${i}` }],
          sampling: { temperature: 0, maxTokens: 24, ignoreEos: true },
        }),
      ),
    )
    const cancel = new RequestCancel()
    // Never iterated: only the signal tells the scheduler the client is gone.
    engine.generate({
      messages: [{ role: 'user', content: 'gone' }],
      signal: cancel,
      sampling: { maxTokens: 24 },
    })
    await new Promise((r) => setTimeout(r, 20))
    expect(stats().waiting).toBe(1)
    cancel.abort()
    await Promise.all(busy)
    expect(stats()).toMatchObject({ running: 0, waiting: 0 })
  }, 60_000)

  it('refuses a prompt past the context with CONTEXT_TOO_LONG before queueing it', async () => {
    const tooLong = Array.from({ length: 2100 }, () => 9707)
    expect(() => engine.generate({ prompt: tooLong })).toThrow(
      expect.objectContaining({ code: 'CONTEXT_TOO_LONG' }),
    )
    expect(() => engine.generate({ prompt: [1, 2], sampling: { maxTokens: 5000 } })).toThrow(
      expect.objectContaining({ code: 'CONTEXT_TOO_LONG' }),
    )
  })
})
