import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { QWEN3_IM_END_ID } from '../helpers/text-models.js'
import {
  disposeReferences,
  referenceDecode,
  referenceEmbeddings,
  referenceGreedy,
} from '../helpers/transformers-reference.js'
import {
  type Chunk,
  firstTokenSeen,
  float32FromBase64,
  type LogprobEntry,
  sseChunks,
  sseData,
  type TextApp,
  textApp,
} from './openai-fixtures.js'

const CHAT = [{ role: 'user', content: 'Hello there, who are you?' }]

let t: TextApp
beforeAll(async () => {
  t = await textApp({ versions: 2, extraChats: ['victim'] })
}, 180_000)
afterAll(async () => {
  await t?.close()
  await disposeReferences()
})

const post = (url: string, payload: object) => t.app.inject({ method: 'POST', url, payload })
const chat = (body: object) => post('/v1/chat/completions', { model: 'chat:1', messages: CHAT, ...body })
const completion = (body: object) =>
  post('/v1/completions', { model: 'chat:1', prompt: 'Once upon a', ...body })

/** The greedy completion transformers.js gives on chat:1: its text (no eos) and whether it hit eos. */
async function reference(maxNewTokens: number, messages = CHAT) {
  const ids = await referenceGreedy(t.repo.chatDir, { messages, maxNewTokens })
  const eos = ids.at(-1) === QWEN3_IM_END_ID
  const kept = eos ? ids.slice(0, -1) : ids
  return { ids, text: await referenceDecode(t.repo.chatDir, kept), eos }
}

function expectOpenAIError(res: { statusCode: number; json(): unknown }, status: number, error: object) {
  expect(res.statusCode).toBe(status)
  const body = res.json() as { error: Record<string, unknown> }
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type'])
  expect(body.error).toMatchObject(error)
  expect(typeof body.error.message).toBe('string')
}

describe('GET /v1/models', () => {
  it('lists the ready text models in OpenAI list shape, never the tensor models', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/v1/models' })
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expect(body.object).toBe('list')
    expect(body.data.map((m: { id: string }) => m.id)).toEqual(['chat', 'embed', 'victim'])
    for (const model of body.data) {
      expect(model).toMatchObject({ object: 'model', owned_by: 'helix' })
      expect(Number.isInteger(model.created)).toBe(true)
    }
    expect(body.data[0]).toMatchObject({ task: 'chat', context_length: 2048 })
    expect(body.data[1]).toMatchObject({ task: 'embeddings' })
  })

  it('answers one model, by name or name:version; unknown ones are 404 in OpenAI shape', async () => {
    const one = await t.app.inject({ method: 'GET', url: '/v1/models/chat' })
    expect(one.json()).toMatchObject({ id: 'chat', object: 'model', owned_by: 'helix' })
    const versioned = await t.app.inject({ method: 'GET', url: '/v1/models/chat:1' })
    expect(versioned.json()).toMatchObject({ id: 'chat:1', task: 'chat' })
    expectOpenAIError(await t.app.inject({ method: 'GET', url: '/v1/models/nope' }), 404, {
      type: 'not_found_error',
      code: 'model_not_found',
      param: 'model',
    })
    expectOpenAIError(await t.app.inject({ method: 'GET', url: '/v1/models/chat:9' }), 404, {
      code: 'model_not_found',
    })
  })

  it('unknown /v1 paths are 404 in OpenAI shape; other paths keep {"error": "…"}', async () => {
    expectOpenAIError(await t.app.inject({ method: 'GET', url: '/v1/nothing' }), 404, {
      type: 'not_found_error',
      code: 'unknown_url',
    })
    const kserve = await t.app.inject({ method: 'GET', url: '/v2/nothing' })
    expect(kserve.statusCode).toBe(404)
    expect(typeof kserve.json().error).toBe('string')
  })
})

describe('POST /v1/embeddings', () => {
  const TEXTS = ['The sea is calm tonight.', 'Écris une phrase 🌊', 'short']

  it('equals transformers.js (mean pooling, normalised), as floats and as base64 float32', async () => {
    const expected = await referenceEmbeddings(t.repo.embedDir, TEXTS, { pooling: 'mean', normalize: true })
    const floats = await post('/v1/embeddings', { model: 'embed', input: TEXTS, user: 'ignored' })
    expect(floats.statusCode).toBe(200)
    const body = floats.json()
    expect(body).toMatchObject({ object: 'list', model: 'embed' })
    expect(body.usage.prompt_tokens).toBeGreaterThan(0)
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens)
    expect(floats.headers['server-timing']).toMatch(/^queue;dur=[\d.]+, compute;dur=[\d.]+, batch;desc=\d+$/)
    const base64 = await post('/v1/embeddings', { model: 'embed', input: TEXTS, encoding_format: 'base64' })
    for (const [i, vector] of expected.entries()) {
      const item = body.data[i]
      expect(item).toMatchObject({ object: 'embedding', index: i })
      expect(item.embedding).toHaveLength(vector.length)
      for (const [j, v] of vector.entries()) expect(item.embedding[j]).toBeCloseTo(v, 5)
      // base64 carries the exact float32 values.
      expect(float32FromBase64(base64.json().data[i].embedding)).toEqual(
        Array.from(Float32Array.from(item.embedding)),
      )
    }
  })

  it('takes one text, token ids and lists of token ids', async () => {
    const one = (await post('/v1/embeddings', { model: 'embed', input: 'short' })).json()
    expect(one.data).toHaveLength(1)
    const ids = (await post('/v1/embeddings', { model: 'embed', input: [101, 2000, 102] })).json()
    expect(ids.data).toHaveLength(1)
    expect(ids.usage.prompt_tokens).toBe(3)
    const lists = (await post('/v1/embeddings', { model: 'embed', input: [[101, 2000], [7]] })).json()
    expect(lists.data.map((d: { index: number }) => d.index)).toEqual([0, 1])
    expect(lists.usage.prompt_tokens).toBe(3)
  })

  it('refuses dimensions on a model that cannot shorten, empty texts, chat models and bad inputs', async () => {
    expectOpenAIError(await post('/v1/embeddings', { model: 'embed', input: 'a', dimensions: 8 }), 400, {
      type: 'invalid_request_error',
      param: 'dimensions',
      code: 'unsupported_parameter',
    })
    expectOpenAIError(await post('/v1/embeddings', { model: 'embed', input: ['a', ''] }), 400, {
      param: 'input.[1]',
    })
    expectOpenAIError(await post('/v1/embeddings', { model: 'chat', input: 'a' }), 400, {
      param: 'model',
      code: 'model_not_supported',
    })
    expectOpenAIError(await post('/v1/embeddings', { model: 'embed', input: [1, 'a'] }), 400, {
      param: 'input',
      code: 'invalid_type',
    })
    expectOpenAIError(await post('/v1/embeddings', { model: 'embed', input: Array(2049).fill('a') }), 400, {
      param: 'input',
    })
    expectOpenAIError(
      await post('/v1/embeddings', { model: 'embed', input: 'a', encoding_format: 'hex' }),
      400,
      {
        param: 'encoding_format',
      },
    )
  })
})

describe('POST /v1/chat/completions', () => {
  it('greedy answers equal transformers.js token for token, with usage and Server-Timing', async () => {
    const ref = await reference(20)
    const res = await chat({ max_tokens: 20, temperature: 0, user: 'u', store: false, metadata: { a: '1' } })
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expect(body.id).toMatch(/^chatcmpl-[0-9a-f]{32}$/)
    expect(body).toMatchObject({ object: 'chat.completion', model: 'chat:1', system_fingerprint: 'chat:1' })
    expect(Math.abs(body.created - Date.now() / 1000)).toBeLessThan(60)
    expect(body.choices).toEqual([
      {
        index: 0,
        message: { role: 'assistant', content: ref.text, refusal: null },
        logprobs: null,
        finish_reason: ref.eos ? 'stop' : 'length',
      },
    ])
    expect(body.usage.completion_tokens).toBe(ref.ids.length)
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens)
    expect(res.headers['server-timing']).toMatch(/^queue;dur=[\d.]+, ttft;dur=[\d.]+, total;dur=[\d.]+$/)
  })

  it('max_completion_tokens wins over max_tokens; text content parts are joined', async () => {
    const res = await chat({ max_tokens: 30, max_completion_tokens: 3, temperature: 0, ignore_eos: true })
    expect(res.json().usage.completion_tokens).toBe(3)
    const parts = await chat({
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello there, who are you?' }] }],
      max_tokens: 8,
      temperature: 0,
    })
    const plain = await chat({ max_tokens: 8, temperature: 0 })
    expect(parts.json().choices[0].message.content).toBe(plain.json().choices[0].message.content)
  })

  it('streams OpenAI chunks over SSE: role first, finish last, usage chunk, then [DONE]', async () => {
    const ref = await reference(12)
    const res = await chat({
      max_tokens: 12,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    })
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toBe('text/event-stream')
    expect(res.headers['cache-control']).toBe('no-cache')
    expect(res.headers['x-accel-buffering']).toBe('no')
    const events = sseData(res.body)
    expect(events.at(-1)).toBe('[DONE]')
    const chunks = events.slice(0, -1) as Chunk[]
    const ids = new Set(chunks.map((c) => c.id))
    expect(ids.size).toBe(1)
    for (const c of chunks) expect(c).toMatchObject({ object: 'chat.completion.chunk', model: 'chat:1' })
    expect(chunks[0].choices).toEqual([
      { index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null },
    ])
    const usageChunk = chunks.at(-1)!
    expect(usageChunk.choices).toEqual([])
    expect(usageChunk.usage?.completion_tokens).toBe(ref.ids.length)
    const finish = chunks.at(-2)!
    expect(finish.choices).toEqual([
      { index: 0, delta: {}, logprobs: null, finish_reason: ref.eos ? 'stop' : 'length' },
    ])
    // Every chunk but the last carries usage: null (include_usage).
    for (const c of chunks.slice(0, -1)) expect(c.usage).toBeNull()
    const text = chunks
      .slice(1, -2)
      .map((c) => c.choices[0].delta.content)
      .join('')
    expect(text).toBe(ref.text)
  })

  it('without include_usage no chunk has a usage field', async () => {
    const res = await chat({ max_tokens: 4, temperature: 0, stream: true })
    const chunks = sseData(res.body).slice(0, -1) as Array<Record<string, unknown>>
    for (const c of chunks) expect(c).not.toHaveProperty('usage')
  })

  it('n choices run at once with seed + i; the same seed gives the same choices', async () => {
    const sampled = { temperature: 1, max_tokens: 6, ignore_eos: true }
    const three = (await chat({ ...sampled, n: 3, seed: 42 })).json()
    expect(three.choices.map((c: { index: number }) => c.index)).toEqual([0, 1, 2])
    const again = (await chat({ ...sampled, n: 3, seed: 42 })).json()
    expect(again.choices).toEqual(three.choices)
    const second = (await chat({ ...sampled, seed: 43 })).json()
    expect(second.choices[0].message.content).toBe(three.choices[1].message.content)
    // One prompt, read once; 6 tokens per choice.
    expect(three.usage.completion_tokens).toBe(18)
    expect(three.usage.prompt_tokens).toBe(second.usage.prompt_tokens)
  })

  it('n choices stream interleaved, each with its own role chunk and finish chunk', async () => {
    const res = await chat({ max_tokens: 5, temperature: 0, n: 2, stream: true, ignore_eos: true })
    const chunks = sseChunks(res.body)
    for (const index of [0, 1]) {
      const mine = chunks.map((c) => c.choices[0]).filter((c) => c.index === index)
      expect(mine[0].delta).toEqual({ role: 'assistant', content: '' })
      expect(mine.at(-1)!.finish_reason).toBe('length')
      expect(mine.slice(0, -1).every((c) => c.finish_reason === null)).toBe(true)
    }
    const text = (index: number) =>
      chunks
        .map((c) => c.choices[0])
        .filter((c) => c.index === index)
        .map((c) => c.delta.content ?? '')
        .join('')
    expect(text(0)).toBe(text(1))
  })

  it('stop strings end the text before them with finish_reason stop', async () => {
    const ref = await reference(16)
    const text = (await chat({ max_tokens: 16, temperature: 0 })).json().choices[0].message.content as string
    expect(text).toBe(ref.text)
    const at = Math.max(1, Math.floor(text.length / 2))
    const stop = text.slice(at, at + 2)
    const cut = text.indexOf(stop)
    const stopped = (await chat({ max_tokens: 16, temperature: 0, stop })).json()
    expect(stopped.choices[0].message.content).toBe(text.slice(0, cut))
    expect(stopped.choices[0].finish_reason).toBe('stop')
    const listed = (await chat({ max_tokens: 16, temperature: 0, stop: ['\u0000never', stop] })).json()
    expect(listed.choices[0].message.content).toBe(text.slice(0, cut))
  })

  it('logprobs: choices[].logprobs.content with top_logprobs alternatives, whole and streamed', async () => {
    const body = (
      await chat({ max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3, ignore_eos: true })
    ).json()
    const content = body.choices[0].logprobs.content as LogprobEntry[]
    expect(content).toHaveLength(6)
    for (const entry of content) {
      expect(Object.keys(entry).sort()).toEqual(['bytes', 'logprob', 'token', 'top_logprobs'])
      expect(entry.logprob).toBeLessThanOrEqual(0)
      expect(entry.bytes).toEqual([...Buffer.from(entry.token, 'utf8')])
      expect(entry.top_logprobs).toHaveLength(3)
      // Greedy: the chosen token is the most likely one.
      expect(entry.top_logprobs[0]).toEqual({
        token: entry.token,
        logprob: entry.logprob,
        bytes: entry.bytes,
      })
    }
    const plain = (await chat({ max_tokens: 6, temperature: 0, logprobs: true, ignore_eos: true })).json()
    expect(plain.choices[0].logprobs.content[0].top_logprobs).toEqual([])

    const streamed = await chat({
      max_tokens: 6,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
      stream: true,
      ignore_eos: true,
    })
    const chunks = sseChunks(streamed.body)
    const tokens = chunks.flatMap((c) => c.choices[0].logprobs?.content ?? [])
    expect(tokens.map((e: { token: string }) => e.token)).toEqual(content.map((e) => e.token))
  })

  it('refuses unsupported fields with 400 unsupported_parameter, naming the field', async () => {
    for (const [field, value] of [
      ['tools', [{ type: 'function', function: { name: 'f' } }]],
      ['tool_choice', 'auto'],
      ['functions', [{ name: 'f' }]],
      ['response_format', { type: 'json_object' }],
      ['logit_bias', { '42': 10 }],
      ['audio', { voice: 'alloy', format: 'wav' }],
      ['modalities', ['text', 'audio']],
      ['reasoning_effort', 'high'],
      ['best_of', 2],
    ] as const) {
      expectOpenAIError(await chat({ [field]: value }), 400, {
        type: 'invalid_request_error',
        param: field,
        code: 'unsupported_parameter',
      })
    }
    // The values that ask for nothing pass.
    const harmless = await chat({
      max_tokens: 1,
      tools: [],
      tool_choice: 'none',
      response_format: { type: 'text' },
      logit_bias: {},
      parallel_tool_calls: false,
      service_tier: 'auto',
    })
    expect(harmless.statusCode).toBe(200)
  })

  it('refuses tool messages, tool calls and non-text parts; reads developer as system', async () => {
    expectOpenAIError(await chat({ messages: [{ role: 'tool', content: 'x', tool_call_id: '1' }] }), 400, {
      param: 'messages.[0].role',
      code: 'unsupported_value',
    })
    expectOpenAIError(
      await chat({ messages: [{ role: 'assistant', content: null, tool_calls: [{ id: '1' }] }, ...CHAT] }),
      400,
      { param: 'messages.[0].tool_calls', code: 'unsupported_parameter' },
    )
    expectOpenAIError(
      await chat({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'hi' },
              { type: 'image_url', image_url: { url: 'https://example.com/a.png' } },
            ],
          },
        ],
      }),
      400,
      { param: 'messages.[0].content.[1].type', code: 'unsupported_value' },
    )
    expectOpenAIError(await chat({ messages: [{ role: 'wizard', content: 'x' }] }), 400, {
      param: 'messages.[0].role',
      code: 'invalid_value',
    })
    const asSystem = async (role: string) =>
      (
        await chat({
          messages: [{ role, content: 'Be brief.' }, ...CHAT],
          max_tokens: 6,
          temperature: 0,
        })
      ).json().choices[0].message.content
    expect(await asSystem('developer')).toBe(await asSystem('system'))
  })

  it('validation errors come in OpenAI shape with the field as param', async () => {
    expectOpenAIError(await post('/v1/chat/completions', { messages: CHAT }), 400, {
      param: 'model',
      code: 'missing_required_parameter',
    })
    expectOpenAIError(await chat({ temperature: 3 }), 400, { param: 'temperature', code: 'invalid_value' })
    expectOpenAIError(await chat({ n: 9 }), 400, { param: 'n' })
    expectOpenAIError(await chat({ max_tokens: '5' }), 400, { param: 'max_tokens', code: 'invalid_type' })
    expectOpenAIError(await chat({ messages: [{ role: 'user' }] }), 400, {
      param: 'messages.[0].content',
      code: 'missing_required_parameter',
    })
    expectOpenAIError(await chat({ stop: ['a', 'b', 'c', 'd', 'e'] }), 400, { param: 'stop' })
    expectOpenAIError(await chat({ stream_options: { include_usage: true } }), 400, {
      param: 'stream_options',
    })
    expectOpenAIError(await chat({ top_logprobs: 2 }), 400, { param: 'top_logprobs' })
    const malformed = await t.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: { 'content-type': 'application/json' },
      payload: '{"model":',
    })
    expectOpenAIError(malformed, 400, { type: 'invalid_request_error', code: 'invalid_json' })
  })

  it('model errors: unknown (404), wrong task (400), past the context (400 context_length_exceeded)', async () => {
    expectOpenAIError(await chat({ model: 'nope' }), 404, {
      type: 'not_found_error',
      code: 'model_not_found',
    })
    expectOpenAIError(await chat({ model: 'embed' }), 400, { param: 'model', code: 'model_not_supported' })
    expectOpenAIError(await chat({ max_tokens: 5000 }), 400, {
      param: 'messages',
      code: 'context_length_exceeded',
    })
    // Even on a stream, an error before the first token is an HTTP error, not an event.
    expectOpenAIError(await chat({ max_tokens: 5000, stream: true }), 400, {
      code: 'context_length_exceeded',
    })
  })

  it('name:version picks a version; the plain name follows the traffic policy (newest)', async () => {
    const v1 = (await chat({ max_tokens: 6, temperature: 0 })).json()
    const v2 = (await chat({ model: 'chat:2', max_tokens: 6, temperature: 0 })).json()
    const plain = (await chat({ model: 'chat', max_tokens: 6, temperature: 0 })).json()
    expect(v1.system_fingerprint).toBe('chat:1')
    expect(v2.system_fingerprint).toBe('chat:2')
    expect(plain.system_fingerprint).toBe('chat:2')
    expect(plain.model).toBe('chat')
    expect(v2.choices[0].message.content).not.toBe(v1.choices[0].message.content)
  })

  it('a failure after the stream began is one error event and no [DONE]', async () => {
    const pending = post('/v1/chat/completions', {
      model: 'victim',
      messages: CHAT,
      max_tokens: 1500,
      ignore_eos: true,
      temperature: 0,
      stream: true,
    })
    // The stream has begun (its first token came), then the model goes away under it.
    await firstTokenSeen(t.app, 'victim')
    await new Promise((r) => setTimeout(r, 20))
    await t.service.unload('victim')
    const res = await pending
    expect(res.statusCode).toBe(200)
    const events = sseData(res.body)
    expect(events).not.toContain('[DONE]')
    const last = events.at(-1) as { error: Record<string, unknown> }
    expect(Object.keys(last.error).sort()).toEqual(['code', 'message', 'param', 'type'])
    expect((events[0] as { choices: unknown[] }).choices).toHaveLength(1)
  })
})

describe('POST /v1/completions', () => {
  it('answers text_completion choices; max_tokens defaults to 16 as OpenAI does', async () => {
    const res = await completion({ temperature: 0, ignore_eos: true })
    expect(res.statusCode).toBe(200)
    const body = res.json()
    expect(body.id).toMatch(/^cmpl-/)
    expect(body).toMatchObject({ object: 'text_completion', model: 'chat:1' })
    expect(body.usage.completion_tokens).toBe(16)
    expect(body.choices[0]).toMatchObject({ index: 0, logprobs: null, finish_reason: 'length' })
  })

  it('a prompt of token ids is the same prompt as its text', async () => {
    const ids = (await t.service.text({ model: 'chat', version: '1' })).engine.encode('Once upon a')
    const asText = (await completion({ max_tokens: 8, temperature: 0 })).json()
    const asIds = (await completion({ prompt: ids, max_tokens: 8, temperature: 0 })).json()
    expect(asIds.choices[0].text).toBe(asText.choices[0].text)
  })

  it('several prompts give n choices each, indexed prompt by prompt; at most 8 sequences', async () => {
    const body = (
      await completion({ prompt: ['Once upon a', 'The sea'], n: 2, max_tokens: 4, temperature: 0 })
    ).json()
    expect(body.choices.map((c: { index: number }) => c.index)).toEqual([0, 1, 2, 3])
    expect(body.choices[0].text).toBe(body.choices[1].text)
    expect(body.choices[2].text).toBe(body.choices[3].text)
    const single = (await completion({ prompt: 'The sea', max_tokens: 4, temperature: 0 })).json()
    expect(body.choices[2].text).toBe(single.choices[0].text)
    expectOpenAIError(await completion({ prompt: ['a', 'b', 'c'], n: 3 }), 400, { param: 'prompt' })
  })

  it('logprobs: k gives parallel token lists, k alternatives and text offsets', async () => {
    const body = (await completion({ max_tokens: 5, temperature: 0, logprobs: 2, ignore_eos: true })).json()
    const { text, logprobs } = body.choices[0]
    expect(logprobs.tokens).toHaveLength(5)
    expect(logprobs.token_logprobs).toHaveLength(5)
    expect(logprobs.top_logprobs).toHaveLength(5)
    for (const top of logprobs.top_logprobs) expect(Object.keys(top).length).toBeLessThanOrEqual(2)
    expect(logprobs.text_offset[0]).toBe(0)
    for (let i = 1; i < 5; i++)
      expect(logprobs.text_offset[i]).toBeGreaterThanOrEqual(logprobs.text_offset[i - 1])
    expect(text.startsWith(logprobs.tokens[0].replace(/\uFFFD/g, '')) || text.includes('\uFFFD')).toBe(true)
  })

  it('streams text_completion chunks with the finish reason last, then [DONE]', async () => {
    const whole = (await completion({ max_tokens: 6, temperature: 0 })).json()
    const res = await completion({
      max_tokens: 6,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    })
    const events = sseData(res.body)
    expect(events.at(-1)).toBe('[DONE]')
    const chunks = events.slice(0, -1) as Chunk[]
    expect(chunks.every((c) => c.object === 'text_completion')).toBe(true)
    expect(chunks.at(-1)!.usage).toEqual(whole.usage)
    expect(chunks.at(-2)!.choices[0].finish_reason).toBe(whole.choices[0].finish_reason)
    expect(
      chunks
        .slice(0, -1)
        .map((c) => c.choices[0].text)
        .join(''),
    ).toBe(whole.choices[0].text)
  })

  it('refuses echo, suffix and best_of', async () => {
    expectOpenAIError(await completion({ echo: true }), 400, { param: 'echo', code: 'unsupported_parameter' })
    expectOpenAIError(await completion({ suffix: 'end' }), 400, { param: 'suffix' })
    expectOpenAIError(await completion({ best_of: 3 }), 400, { param: 'best_of' })
    expectOpenAIError(await completion({ prompt: Array(3000).fill(100) }), 400, {
      param: 'prompt',
      code: 'context_length_exceeded',
    })
  })
})

describe('metrics', () => {
  it('counts text requests, tokens and token timing by model', async () => {
    await chat({ max_tokens: 3, temperature: 0, ignore_eos: true })
    await chat({ model: 'nope' })
    const text = (await t.app.inject({ method: 'GET', url: '/metrics' })).body
    expect(text).toMatch(
      /helix_text_requests_total\{model="chat",endpoint="chat",finish_reason="length"\} \d+/,
    )
    expect(text).toMatch(
      /helix_text_requests_total\{model="\(unknown\)",endpoint="chat",finish_reason="error"\} \d+/,
    )
    expect(text).toMatch(
      /helix_text_requests_total\{model="embed",endpoint="embeddings",finish_reason="none"\} \d+/,
    )
    expect(text).toMatch(/helix_text_tokens_total\{model="chat",kind="completion"\} \d+/)
    expect(text).toMatch(/helix_text_tokens_total\{model="chat",kind="prompt"\} \d+/)
    expect(text).toMatch(/helix_text_time_to_first_token_seconds_count\{model="chat"\} [1-9]/)
    expect(text).toMatch(/helix_text_inter_token_latency_seconds_count\{model="chat"\} [1-9]/)
    expect(text).toMatch(/helix_text_sequences\{model="chat",version="1",state="running"\} 0/)
    expect(text).toMatch(/helix_text_kv_cache_budget_bytes\{model="chat",version="1"\} [1-9]/)
    expect(text).not.toContain('model="nope"')
  })
})
