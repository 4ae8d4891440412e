import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { QWEN3_IM_END_ID } from '../helpers/text-models.js'
import {
  disposeReferences,
  referenceDecode,
  referenceEncode,
  referenceGreedy,
} from '../helpers/transformers-reference.js'
import { firstTokenSeen, sseData, type TextApp, textApp } from './openai-fixtures.js'

const PROMPT = 'Once upon a time'

let t: TextApp
beforeAll(async () => {
  t = await textApp({ extraChats: ['victim'] })
}, 180_000)
afterAll(async () => {
  await t?.close()
  await disposeReferences()
})

const generate = (body: object, url = '/v2/models/chat/generate') =>
  t.app.inject({ method: 'POST', url, payload: { text_input: PROMPT, ...body } })

interface Piece {
  model_name: string
  model_version: string
  text_output: string
  id?: string
}

describe("Triton's generate extension", () => {
  it('generate answers {model_name, model_version, text_output}: greedy equals transformers.js', async () => {
    const promptIds = await referenceEncode(t.repo.chatDir, PROMPT)
    const ids = await referenceGreedy(t.repo.chatDir, { promptIds, maxNewTokens: 12 })
    const kept = ids.at(-1) === QWEN3_IM_END_ID ? ids.slice(0, -1) : ids
    const res = await generate({ id: 'r1', parameters: { max_tokens: 12, temperature: 0 } })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({
      id: 'r1',
      model_name: 'chat',
      model_version: '1',
      text_output: await referenceDecode(t.repo.chatDir, kept),
    })
    expect(res.headers['server-timing']).toMatch(/^queue;dur=[\d.]+, ttft;dur=[\d.]+, total;dur=[\d.]+$/)
  })

  it('the versioned route, stop strings, seeds and unknown parameters', async () => {
    const whole = (await generate({ parameters: { max_tokens: 12, temperature: 0 } })).json() as Piece
    const versioned = await generate(
      { parameters: { max_tokens: 12, temperature: 0 } },
      '/v2/models/chat/versions/1/generate',
    )
    expect(versioned.json()).toEqual(whole)
    const stop = whole.text_output.slice(3, 5)
    const stopped = (await generate({ parameters: { max_tokens: 12, temperature: 0, stop: [stop] } })).json()
    expect(stopped.text_output).toBe(whole.text_output.slice(0, whole.text_output.indexOf(stop)))
    const seeded = { max_tokens: 5, temperature: 1, seed: 9, ignore_eos: true, beam_width: 1 }
    const a = (await generate({ parameters: seeded })).json()
    const b = (await generate({ parameters: seeded })).json()
    expect(a.text_output).toBe(b.text_output)
  })

  it('generate_stream sends one {model_name, model_version, text_output} event per piece, no [DONE]', async () => {
    const parameters = { max_tokens: 10, temperature: 0, ignore_eos: true }
    const whole = (await generate({ parameters })).json() as Piece
    const res = await generate({ id: 's1', parameters }, '/v2/models/chat/generate_stream')
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toBe('text/event-stream')
    expect(res.headers['cache-control']).toBe('no-cache')
    expect(res.headers['x-accel-buffering']).toBe('no')
    const events = sseData(res.body) as Piece[]
    expect(events.length).toBeGreaterThan(1)
    for (const event of events)
      expect(event).toMatchObject({ id: 's1', model_name: 'chat', model_version: '1' })
    expect(events.map((e) => e.text_output).join('')).toBe(whole.text_output)
    expect(events.every((e) => e.text_output !== '')).toBe(true)
  })

  it('errors keep the KServe shape {"error": "…"}', async () => {
    const expectKServe = (res: { statusCode: number; json(): { error: unknown } }, status: number) => {
      expect(res.statusCode).toBe(status)
      expect(typeof res.json().error).toBe('string')
    }
    expectKServe(await generate({}, '/v2/models/nope/generate'), 404)
    expectKServe(await generate({}, '/v2/models/chat/versions/7/generate'), 404)
    expectKServe(await generate({}, '/v2/models/embed/generate'), 400)
    expectKServe(await generate({ parameters: { max_tokens: 5000 } }), 400)
    expectKServe(await generate({ parameters: { max_tokens: 5000 } }, '/v2/models/chat/generate_stream'), 400)
    expectKServe(
      await t.app.inject({ method: 'POST', url: '/v2/models/chat/generate', payload: { parameters: {} } }),
      400,
    )
    expectKServe(await generate({ parameters: { temperature: 9 } }), 400)
  })

  it('a failure after the stream began is one {"error": "…"} event', async () => {
    const pending = generate(
      { parameters: { max_tokens: 1500, temperature: 0, ignore_eos: true } },
      '/v2/models/victim/generate_stream',
    )
    // The stream has begun (its first token came), then the model goes away under it.
    await firstTokenSeen(t.app, 'victim')
    await new Promise((r) => setTimeout(r, 20))
    await t.service.unload('victim')
    const res = await pending
    const events = sseData(res.body) as Array<Piece & { error?: string }>
    expect(typeof events.at(-1)?.error).toBe('string')
    expect(events.slice(0, -1).every((e) => typeof e.text_output === 'string')).toBe(true)
  })

  it('counts generate requests in the text metrics', async () => {
    const text = (await t.app.inject({ method: 'GET', url: '/metrics' })).body
    expect(text).toMatch(
      /helix_text_requests_total\{model="chat",endpoint="generate",finish_reason="length"\} [1-9]/,
    )
    expect(text).toMatch(
      /helix_text_requests_total\{model="chat",endpoint="generate_stream",finish_reason="length"\} [1-9]/,
    )
    expect(text).toMatch(
      /helix_text_requests_total\{model="victim",endpoint="generate_stream",finish_reason="error"\} 1/,
    )
  })
})
