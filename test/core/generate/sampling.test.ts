import { describe, expect, it } from 'vitest'
import { pickToken, type SamplerSettings, SeededRandom } from '../../../src/core/generate/sampling.js'

const GREEDY: SamplerSettings = {
  temperature: 0,
  topP: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  logprobs: false,
  topLogprobs: 0,
}

const logits = Float32Array.from([1, 3, 2.5, -1, 0])

describe('picking the next token', () => {
  it('greedy takes the largest logit; log probabilities are the log softmax of the raw logits', () => {
    const pick = pickToken(
      logits,
      0,
      5,
      { ...GREEDY, logprobs: true, topLogprobs: 3 },
      new Map(),
      new SeededRandom(1),
    )
    const normaliser = Math.log([...logits].reduce((s, v) => s + Math.exp(v), 0))
    expect(pick.token).toBe(1)
    expect(pick.logprob).toBeCloseTo(3 - normaliser, 6)
    expect(pick.top?.map((t) => t.token)).toEqual([1, 2, 0])
    expect(pick.top?.[1]?.logprob).toBeCloseTo(2.5 - normaliser, 6)
  })

  it('reads one row of a batch of logits by its offset', () => {
    const batch = Float32Array.from([...logits, 9, 0, 0, 0, 0])
    expect(pickToken(batch, 5, 5, GREEDY, new Map(), new SeededRandom(1)).token).toBe(0)
  })

  it('frequency and presence penalties lower what was generated (OpenAI: count × frequency + presence)', () => {
    const counts = new Map([[1, 2]])
    // 3 - 2 × 0.2 - 0.2 = 2.4 < 2.5: token 2 wins.
    expect(
      pickToken(
        logits,
        0,
        5,
        { ...GREEDY, frequencyPenalty: 0.2, presencePenalty: 0.2 },
        counts,
        new SeededRandom(1),
      ).token,
    ).toBe(2)
    expect(
      pickToken(logits, 0, 5, { ...GREEDY, frequencyPenalty: 0.2 }, counts, new SeededRandom(1)).token,
    ).toBe(1)
  })

  it('the same seed samples the same tokens; top_p keeps the nucleus only', () => {
    const settings = { ...GREEDY, temperature: 1 }
    const draw = (seed: number, s: SamplerSettings) => {
      const random = new SeededRandom(seed)
      return Array.from({ length: 200 }, () => pickToken(logits, 0, 5, s, new Map(), random).token)
    }
    expect(draw(7, settings)).toEqual(draw(7, settings))
    expect(draw(7, settings)).not.toEqual(draw(8, settings))
    const all = new Set(draw(3, settings))
    expect(all.size).toBeGreaterThanOrEqual(4)
    // Token 1 alone holds ~0.55 of the mass: top_p 0.5 keeps only it.
    expect(new Set(draw(3, { ...settings, topP: 0.5 }))).toEqual(new Set([1]))
    // Probabilities 0.5, 0.3, 0.15, 0.05: top_p 0.7 keeps two tokens, 0.85 three, in their proportions.
    const shaped = Float32Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log))
    const nucleus = (topP: number) => {
      const random = new SeededRandom(9)
      const counts = [0, 0, 0, 0]
      for (let i = 0; i < 4000; i++) {
        const t = pickToken(shaped, 0, 4, { ...settings, topP }, new Map(), random).token
        counts[t] = (counts[t] as number) + 1
      }
      return counts
    }
    const two = nucleus(0.7)
    expect(two[2]).toBe(0)
    expect(two[3]).toBe(0)
    expect((two[0] as number) / 4000).toBeCloseTo(0.5 / 0.8, 1)
    const three = nucleus(0.85)
    expect(three[3]).toBe(0)
    expect(three[2]).toBeGreaterThan(0)
    // Low temperature sharpens towards the best token.
    const cold = draw(3, { ...settings, temperature: 0.05 })
    expect(cold.filter((t) => t === 1).length).toBeGreaterThan(190)
  })

  it('the seeded generator is uniform enough and the same on every run', () => {
    const random = new SeededRandom(12345)
    const values = Array.from({ length: 10_000 }, () => random.next())
    expect(Math.min(...values)).toBeGreaterThanOrEqual(0)
    expect(Math.max(...values)).toBeLessThan(1)
    const mean = values.reduce((s, v) => s + v, 0) / values.length
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.02)
    expect(new SeededRandom(12345).next()).toBe(values[0])
  })
})
