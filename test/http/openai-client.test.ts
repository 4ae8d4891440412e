import OpenAI from 'openai'
import { Agent } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLI_ACTOR, createKey } from '../../src/core/identity/api-keys.js'
import { type Daemon, daemon, type IdentityWorld, identityWorld } from '../core/identity/identity-harness.js'
import { QWEN3_IM_END_ID } from '../helpers/text-models.js'
import {
  disposeReferences,
  referenceDecode,
  referenceEmbeddings,
  referenceGreedy,
} from '../helpers/transformers-reference.js'
import { type TextRepository, textRepository } from './openai-fixtures.js'

/**
 * The official `openai` client, unchanged but for baseURL and apiKey, against a daemon listening on
 * 127.0.0.1 (real identity layer, real model service over generated text models).
 */
const CHATS = [
  [{ role: 'user' as const, content: 'Hello there, who are you?' }],
  [{ role: 'user' as const, content: 'Écris une phrase sur la mer 🌊.' }],
  [
    { role: 'system' as const, content: 'You are terse.' },
    { role: 'user' as const, content: 'Count to three.' },
  ],
  [{ role: 'user' as const, content: '数一数' }],
]
const MAX_TOKENS = 24

let world: IdentityWorld
let d: Daemon
let repo: TextRepository
let client: OpenAI
let baseURL: string
let adminKey: string
let agent: Agent

beforeAll(async () => {
  world = await identityWorld()
  repo = await textRepository({ modelsDir: world.database.home.modelsDir })
  d = await daemon(world)
  const address = await d.app.listen({ host: '127.0.0.1', port: 0 })
  baseURL = `${address}/v1`
  const key = await createKey(d.identity.deps, CLI_ACTOR, { name: 'openai-client', scopes: ['infer'] })
  adminKey = (await createKey(d.identity.deps, CLI_ACTOR, { name: 'admin', scopes: ['admin'] })).key
  agent = new Agent()
  client = new OpenAI({ baseURL, apiKey: key.key, maxRetries: 0, fetchOptions: { dispatcher: agent } })
}, 240_000)
afterAll(async () => {
  // The client's pool may hold a connection that never sent a request, which app.close() would wait
  // out (helix serve destroys those itself when it drains).
  await agent?.close()
  await d?.close()
  await world?.teardown()
  await disposeReferences()
})

describe('the official openai client', () => {
  it('lists the text models', async () => {
    const ids: string[] = []
    for await (const model of client.models.list()) ids.push(model.id)
    expect(ids).toEqual(['chat', 'embed'])
    const one = await client.models.retrieve('chat')
    expect(one).toMatchObject({ id: 'chat', object: 'model', owned_by: 'helix' })
  })

  it('embeds (the client asks base64 by default and decodes it) as transformers.js does', async () => {
    const texts = ['The sea is calm tonight.', 'Écris une phrase 🌊', 'short']
    const res = await client.embeddings.create({ model: 'embed', input: texts })
    const expected = await referenceEmbeddings(repo.embedDir, texts, { pooling: 'mean', normalize: true })
    expect(res.data).toHaveLength(3)
    for (const [i, vector] of expected.entries()) {
      expect(res.data[i].index).toBe(i)
      const got = res.data[i].embedding
      expect(got).toHaveLength(vector.length)
      for (const [j, v] of vector.entries()) expect(Math.abs(got[j] - v)).toBeLessThanOrEqual(1e-5)
    }
    expect(res.usage.prompt_tokens).toBeGreaterThan(0)
  })

  it('streams several chat completions at once, each token for token as transformers.js (greedy)', async () => {
    const runs = await Promise.all(
      CHATS.map(async (messages) => {
        const stream = await client.chat.completions.create({
          model: 'chat',
          messages,
          max_tokens: MAX_TOKENS,
          temperature: 0,
          logprobs: true,
          stream: true,
          stream_options: { include_usage: true },
        })
        let text = ''
        const tokens: string[] = []
        let finish: string | null = null
        let usage: OpenAI.CompletionUsage | undefined
        for await (const chunk of stream) {
          if (chunk.usage) usage = chunk.usage
          const choice = chunk.choices[0]
          if (!choice) continue
          text += choice.delta.content ?? ''
          for (const entry of choice.logprobs?.content ?? []) tokens.push(entry.token)
          if (choice.finish_reason) finish = choice.finish_reason
        }
        return { text, tokens, finish, usage }
      }),
    )
    for (const [i, messages] of CHATS.entries()) {
      const ids = await referenceGreedy(repo.chatDir, { messages, maxNewTokens: MAX_TOKENS })
      const eos = ids.at(-1) === QWEN3_IM_END_ID
      const kept = eos ? ids.slice(0, -1) : ids
      const run = runs[i]
      // One streamed token per reference token (the eos token ends the stream unsent) ...
      const expectedTokens = await Promise.all(kept.map((id) => referenceDecode(repo.chatDir, [id])))
      expect(run.tokens).toEqual(expectedTokens)
      // ... and the streamed text is the reference's text.
      expect(run.text).toBe(await referenceDecode(repo.chatDir, kept))
      expect(run.finish).toBe(eos ? 'stop' : 'length')
      expect(run.usage?.completion_tokens).toBe(ids.length)
    }
  })

  it('non-streamed chat and text completions', async () => {
    const answer = await client.chat.completions.create({
      model: 'chat:1',
      messages: CHATS[0],
      max_completion_tokens: 5,
      temperature: 0,
      seed: 1,
      n: 2,
    })
    expect(answer.choices).toHaveLength(2)
    expect(answer.choices[0].message.content).toBe(answer.choices[1].message.content)
    const completion = await client.completions.create({
      model: 'chat',
      prompt: 'Once upon a',
      max_tokens: 4,
    })
    expect(completion.object).toBe('text_completion')
    expect(completion.choices[0].text.length).toBeGreaterThan(0)
  })

  it('throws its typed errors with the code and param the daemon sent', async () => {
    const missing = client.chat.completions.create({ model: 'nope', messages: CHATS[0] })
    await expect(missing).rejects.toBeInstanceOf(OpenAI.NotFoundError)
    await expect(missing).rejects.toMatchObject({ status: 404, code: 'model_not_found', param: 'model' })
    const tools = client.chat.completions.create({
      model: 'chat',
      messages: CHATS[0],
      tools: [{ type: 'function', function: { name: 'f', parameters: {} } }],
    })
    await expect(tools).rejects.toBeInstanceOf(OpenAI.BadRequestError)
    await expect(tools).rejects.toMatchObject({ code: 'unsupported_parameter', param: 'tools' })
    const stranger = new OpenAI({
      baseURL,
      apiKey: 'hx_not_a_key',
      maxRetries: 0,
      fetchOptions: { dispatcher: agent },
    })
    await expect(stranger.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError)
  })

  it('a client that goes away mid-stream cancels its sequence', async () => {
    const engine = (await d.service.text({ model: 'chat' })).engine as unknown as {
      stats(): { running: number; waiting: number }
    }
    // ignore_eos: vLLM's extension, which Helix accepts (no early end of sequence).
    const body: OpenAI.ChatCompletionCreateParamsStreaming & { ignore_eos: boolean } = {
      model: 'chat',
      messages: CHATS[0],
      max_tokens: 1500,
      temperature: 0,
      stream: true,
      ignore_eos: true,
    }
    const stream = await client.chat.completions.create(body)
    let chunks = 0
    for await (const _chunk of stream) {
      if (++chunks === 5) break // the client's iterator aborts the request
    }
    const deadline = Date.now() + 10_000
    while (engine.stats().running > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    expect(engine.stats()).toMatchObject({ running: 0, waiting: 0 })
    const metrics = await fetch(`${baseURL.replace('/v1', '')}/metrics`, {
      headers: { authorization: `Bearer ${adminKey}` },
      dispatcher: agent,
    } as RequestInit)
    expect(await metrics.text()).toMatch(
      /helix_text_requests_total\{model="chat",endpoint="chat",finish_reason="cancelled"\} 1/,
    )
  })
})
