import { describe, expect, it } from 'vitest'
import {
  ageInDays,
  currentKid,
  emptyKeySet,
  isDue,
  type KeySet,
  publishedKids,
  replaceWith,
  retireDueKeys,
  rotateTo,
} from '../../../src/state/jwt/key-set.js'

const A = 'A'.repeat(43)
const B = 'B'.repeat(43)
const C = 'C'.repeat(43)
const t0 = new Date('2026-01-01T00:00:00.000Z')
const days = (n: number) => new Date(t0.getTime() + n * 86_400_000)

function firstSet(): KeySet {
  return replaceWith(emptyKeySet(), A, 'EdDSA', t0)
}

describe('key set lifecycle', () => {
  it('a fresh set has one current key and publishes only it', () => {
    const set = firstSet()
    expect(currentKid(set)).toBe(A)
    expect(set.keys[A]).toEqual({
      alg: 'EdDSA',
      created_at: t0.toISOString(),
      status: 'current',
      retire_at: null,
    })
    expect(publishedKids(set)).toEqual([A])
    expect(currentKid(emptyKeySet())).toBeUndefined()
  })

  it('rotation demotes the current key to previous until now + overlap', () => {
    const set = rotateTo(firstSet(), B, 'ES256', days(10), 2)
    expect(currentKid(set)).toBe(B)
    expect(set.keys[A].status).toBe('previous')
    expect(set.keys[A].retire_at).toBe(days(12).toISOString())
    expect(set.keys[B]).toMatchObject({ alg: 'ES256', status: 'current', retire_at: null })
    expect(publishedKids(set)).toEqual([B, A])
  })

  it('a previous key is due exactly when its retire_at has come', () => {
    const set = rotateTo(firstSet(), B, 'EdDSA', days(1), 1)
    expect(isDue(set.keys[A], days(1.99))).toBe(false)
    expect(isDue(set.keys[A], days(2))).toBe(true)
    expect(isDue(set.keys[B], days(100))).toBe(false)
  })

  it('retireDueKeys retires only previous keys whose overlap passed, each on its own clock', () => {
    const twice = rotateTo(rotateTo(firstSet(), B, 'EdDSA', days(1), 3), C, 'EdDSA', days(2), 3)
    expect(publishedKids(twice)).toEqual([C, B, A])
    const early = retireDueKeys(twice, days(3))
    expect(early.retired).toEqual([])
    const mid = retireDueKeys(twice, days(4))
    expect(mid.retired).toEqual([A])
    expect(mid.set.keys[A].status).toBe('retired')
    expect(publishedKids(mid.set)).toEqual([C, B])
    const late = retireDueKeys(mid.set, days(5))
    expect(late.retired).toEqual([B])
    expect(publishedKids(late.set)).toEqual([C])
  })

  it('a zero overlap retires the old key in the same step', () => {
    const { set, retired } = retireDueKeys(rotateTo(firstSet(), B, 'EdDSA', days(1), 0), days(1))
    expect(retired).toEqual([A])
    expect(publishedKids(set)).toEqual([B])
  })

  it('replaceWith retires every published key at once and keeps history', () => {
    const rotated = rotateTo(firstSet(), B, 'EdDSA', days(1), 5)
    const retiredBefore = {
      ...rotated,
      keys: { ...rotated.keys, [C]: { ...rotated.keys[A], status: 'retired' as const } },
    }
    const fresh = replaceWith(retiredBefore, 'D'.repeat(43), 'RS256', days(2))
    expect(publishedKids(fresh)).toEqual(['D'.repeat(43)])
    expect(fresh.keys[A]).toMatchObject({ status: 'retired', retire_at: days(2).toISOString() })
    expect(fresh.keys[B]).toMatchObject({ status: 'retired', retire_at: days(2).toISOString() })
    expect(fresh.keys[C]).toEqual(retiredBefore.keys[C])
  })

  it('ageInDays floors whole days', () => {
    expect(ageInDays(t0.toISOString(), days(0.5))).toBe(0)
    expect(ageInDays(t0.toISOString(), days(91.2))).toBe(91)
  })
})
