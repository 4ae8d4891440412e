import { describe, expect, it } from 'vitest'
import {
  parseDuration,
  parseFraction,
  parseHeaders,
  parsePositiveIntList,
  parseRateList,
  parseShapes,
} from '../../src/bench/flag-values.js'

describe('flag values', () => {
  it('parses durations in ms, s, m and h (bare numbers are seconds)', () => {
    expect(parseDuration('250ms', 'x')).toBe(250)
    expect(parseDuration('2s', 'x')).toBe(2000)
    expect(parseDuration('1.5m', 'x')).toBe(90_000)
    expect(parseDuration('1h', 'x')).toBe(3_600_000)
    expect(parseDuration('3', 'x')).toBe(3000)
    expect(() => parseDuration('soon', 'duration')).toThrow(/--duration must be a duration/)
  })

  it('parses percentages and fractions', () => {
    expect(parseFraction('10%', 'x')).toBeCloseTo(0.1)
    expect(parseFraction('0.25', 'x')).toBeCloseTo(0.25)
    expect(() => parseFraction('2', 'max-regression')).toThrow(/--max-regression/)
    expect(() => parseFraction('ten', 'max-regression')).toThrow(/percentage/)
  })

  it('parses integer and rate lists', () => {
    expect(parsePositiveIntList('1, 8,32', 'c')).toEqual([1, 8, 32])
    expect(() => parsePositiveIntList('1,0', 'concurrency')).toThrow(/positive integers/)
    expect(() => parsePositiveIntList('1,x', 'concurrency')).toThrow(/positive integers/)
    expect(parseRateList('0.5,100', 'rate')).toEqual([0.5, 100])
    expect(() => parseRateList('-1', 'rate')).toThrow(/positive numbers/)
  })

  it('parses shapes and headers', () => {
    expect(parseShapes(['x=1,3,48,192', 'scalar='])).toEqual({ x: [1, 3, 48, 192], scalar: [] })
    expect(parseShapes(undefined)).toEqual({})
    expect(() => parseShapes(['x:1,2'])).toThrow(/--shape must look like/)
    expect(parseHeaders(['X-Source: bench', 'A:b:c'])).toEqual({ 'x-source': 'bench', a: 'b:c' })
    expect(parseHeaders(undefined)).toEqual({})
    expect(() => parseHeaders(['novalue'])).toThrow(/--header/)
  })

  it('raises user errors (exit 2) with a code', () => {
    try {
      parseDuration('x', 'warmup')
    } catch (err) {
      expect((err as { exitCode: number; code: string }).exitCode).toBe(2)
      expect((err as { code: string }).code).toBe('BENCH_BAD_FLAG')
    }
    expect.assertions(2)
  })
})
