import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { GenerationEvent, TextEngine } from '../../../src/core/generate/types.js'
import { createModelService, type HelixModelService } from '../../../src/core/infer/model-service.js'
import { QWEN3_IM_END_ID, writeChatModel, writeEmbeddingModel } from '../../helpers/text-models.js'
import {
  disposeReferences,
  referenceChatPrompt,
  referenceEmbeddings,
  referenceGreedy,
} from '../../helpers/transformers-reference.js'

/** Collects a generation: the streamed token ids and text, and the done event. */
async function collect(events: AsyncIterable<GenerationEvent>) {
  const ids: number[] = []
  let text = ''
  for await (const event of events) {
    if (event.type === 'token') {
      ids.push(event.tokenId)
      text += event.text
    } else return { ids, text: text + event.text, done: event }
  }
  throw new Error('the generation ended without a done event')
}

const CHATS = [
  [{ role: 'user', content: 'Hello there, who are you?' }],
  [{ role: 'user', content: 'Écris une phrase sur la mer 🌊.' }],
  [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Count to three.' },
  ],
  [{ role: 'user', content: '数一数' }],
]

describe('text models served from a Hugging Face–format folder', () => {
  let root: string
  let service: HelixModelService
  let chatDir: string
  let plainDir: string
  let embedDir: string

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'helix-text-'))
    const models = join(root, 'models')
    chatDir = join(models, 'chat', '1')
    plainDir = join(models, 'nopos', '1')
    embedDir = join(models, 'embed', '1')
    await writeChatModel(chatDir, { seed: 7 })
    await writeChatModel(plainDir, { seed: 11, positionIds: false })
    await writeEmbeddingModel(embedDir, { seed: 3 })
    await writeFile(join(models, 'chat', 'config.yaml'), 'text:\n  max_sequences: 8\n')
    service = await createModelService({ repositoryDir: models, defaultDevice: 'cpu' })
  }, 120_000)

  afterAll(async () => {
    await service?.close()
    await disposeReferences()
    if (root) await rm(root, { recursive: true, force: true })
  })

  const engine = async (model: string): Promise<TextEngine> => (await service.text({ model })).engine

  it('infers the task of each folder and lists the text models', async () => {
    expect((await engine('chat')).info.task).toBe('chat')
    expect((await engine('nopos')).info.task).toBe('chat')
    expect((await engine('embed')).info.task).toBe('embeddings')
    expect(
      service
        .textModels()
        .map((t) => t.modelName)
        .sort(),
    ).toEqual(['chat', 'embed', 'nopos'])
    await expect(service.text({ model: 'embed', task: 'chat' })).rejects.toMatchObject({
      code: 'MODEL_WRONG_TASK',
    })
  })

  it('renders the chat template exactly as transformers.js does', async () => {
    const chat = await engine('chat')
    for (const messages of CHATS)
      expect(chat.renderChat(messages)).toBe(await referenceChatPrompt(chatDir, messages))
  })

  it.each([
    ['with position_ids', 'chat'],
    ['without position_ids', 'nopos'],
  ])(
    'greedy tokens equal transformers.js, %s, with sequences batched together',
    async (_label, model) => {
      const dir = model === 'chat' ? chatDir : plainDir
      const text = await engine(model)
      const runs = await Promise.all(
        CHATS.map((messages) =>
          collect(text.generate({ messages, sampling: { temperature: 0, maxTokens: 24 } })),
        ),
      )
      for (const [i, messages] of CHATS.entries()) {
        const reference = await referenceGreedy(dir, { messages, maxNewTokens: 24 })
        const run = runs[i] as Awaited<ReturnType<typeof collect>>
        const eos = reference.at(-1) === QWEN3_IM_END_ID || reference.length < 24
        expect(run.ids).toEqual(eos ? reference.slice(0, -1) : reference)
        expect(run.done.finishReason).toBe(eos ? 'stop' : 'length')
        expect(run.done.usage.completionTokens).toBe(reference.length)
        // Random weights may emit invalid UTF-8 (a U+FFFD inside the text); the stream still equals the decode.
        expect(run.text).toBe(text.decode(run.ids))
      }
    },
    120_000,
  )

  it('the same seed gives the same sampled tokens; stop strings end the text', async () => {
    const chat = await engine('chat')
    const sampled = (seed: number) =>
      collect(
        chat.generate({ messages: CHATS[0], sampling: { temperature: 1, topP: 0.9, seed, maxTokens: 16 } }),
      )
    const [a, b] = await Promise.all([sampled(42), sampled(42)])
    expect(a.ids).toEqual(b.ids)
    const greedy = await collect(
      chat.generate({ messages: CHATS[1], sampling: { temperature: 0, maxTokens: 16 } }),
    )
    const stop = greedy.text.slice(4, 7)
    const stopped = await collect(
      chat.generate({ messages: CHATS[1], sampling: { temperature: 0, maxTokens: 16, stop: [stop] } }),
    )
    expect(stopped.done.finishReason).toBe('stop')
    expect(stopped.text).toBe(greedy.text.slice(0, greedy.text.indexOf(stop)))
  }, 60_000)

  it('a consumer that stops reading cancels its sequence and frees its place', async () => {
    const chat = await engine('chat')
    for await (const event of chat.generate({
      messages: CHATS[0],
      sampling: { temperature: 0, maxTokens: 200 },
    })) {
      if (event.type === 'token' && event.index === 2) break
    }
    const after = await collect(
      chat.generate({ messages: CHATS[2], sampling: { temperature: 0, maxTokens: 4 } }),
    )
    expect(after.ids.length + (after.done.finishReason === 'stop' ? 1 : 0)).toBeGreaterThan(0)
  }, 60_000)

  it('embeddings equal transformers.js (mean pooling, normalised) whatever the batch', async () => {
    const embed = await engine('embed')
    const texts = ['a short one', 'a much longer sentence about the sea and the sky', 'ü 🌍']
    const reference = await referenceEmbeddings(embedDir, texts, { pooling: 'mean', normalize: true })
    const together = await embed.embed({ inputs: texts })
    const alone = await Promise.all(texts.map((t) => embed.embed({ inputs: [t] })))
    for (const [i, ref] of reference.entries()) {
      for (const got of [together.embeddings[i], alone[i]?.embeddings[0]]) {
        expect(got).toBeDefined()
        const v = got as Float32Array
        expect(v.length).toBe(ref.length)
        for (let d = 0; d < v.length; d++)
          expect(Math.abs((v[d] as number) - (ref[d] as number))).toBeLessThanOrEqual(1e-5)
      }
    }
    expect(together.promptTokens).toBeGreaterThan(texts.length)
  }, 60_000)
})
