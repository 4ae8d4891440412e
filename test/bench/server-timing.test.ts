import { describe, expect, it } from 'vitest'
import { parseServerTiming } from '../../src/bench/server-timing.js'
import { SseTokenParser } from '../../src/bench/sse-tokens.js'

describe('parseServerTiming', () => {
  it('reads the daemon header', () => {
    expect(parseServerTiming('queue;dur=1.250, compute;dur=3.5')).toEqual({ queue: 1.25, compute: 3.5 })
  })
  it('handles quoted durations, descriptions, repeated headers and junk', () => {
    expect(parseServerTiming(['db;desc="x";dur="2"', 'cache, app;dur=abc, ;dur=1'])).toEqual({ db: 2 })
    expect(parseServerTiming(undefined)).toEqual({})
  })
})

describe('SseTokenParser', () => {
  const event = (delta: object) => `data: ${JSON.stringify({ choices: [{ index: 0, delta }] })}\n\n`
  it('times content events across chunk boundaries and ignores role, usage and [DONE]', () => {
    const p = new SseTokenParser()
    const stream = event({ role: 'assistant' }) + event({ content: 'a' }) + event({ content: 'b' })
    p.push(Buffer.from(stream.slice(0, 70)), 1)
    p.push(Buffer.from(stream.slice(70)), 2)
    p.push(Buffer.from(`data: {"choices":[],"usage":{"total_tokens":2}}\n\ndata: [DONE]\n\n`), 3)
    expect(p.finish(4)).toEqual([2, 2])
  })
  it('counts plain-text events and a final event without a blank line', () => {
    const p = new SseTokenParser()
    p.push(Buffer.from('data: hello\r\n\r\nevent: x\ndata: {"choices":[{"text":"t"}]}'), 1)
    expect(p.finish(5)).toEqual([1, 5])
  })
})
