import { type Static, Type } from '@sinclair/typebox'
import { JwtAlgorithmSchema } from '../../shared/config-schema.js'

/**
 * keys/keys.json: the lifecycle of every signing key, by kid. It is the source of truth; jwks.json is
 * derived from it (current + previous keys) and rewritten together with it.
 */
export const KeyStatusSchema = Type.Union([
  Type.Literal('current'),
  Type.Literal('previous'),
  Type.Literal('retired'),
])
export type KeyStatus = Static<typeof KeyStatusSchema>

export const KeyRecordSchema = Type.Object({
  /** Signing algorithm of this key. */
  alg: JwtAlgorithmSchema,
  /** When the key was generated (ISO 8601). */
  created_at: Type.String({ minLength: 1 }),
  /** current signs new tokens; previous still verifies until retire_at; retired is gone from the JWKS. */
  status: KeyStatusSchema,
  /** When a previous key leaves the JWKS (null for the current key). */
  retire_at: Type.Union([Type.String({ minLength: 1 }), Type.Null()]),
})
export type KeyRecord = Static<typeof KeyRecordSchema>

export const KeySetSchema = Type.Object({
  version: Type.Literal(1),
  keys: Type.Record(Type.String(), KeyRecordSchema),
})
export type KeySet = Static<typeof KeySetSchema>

/** A kid is an RFC 7638 SHA-256 thumbprint: 43 base64url characters. It also names a file, so it is checked. */
export const KID_PATTERN = /^[A-Za-z0-9_-]{43}$/

const DAY_MS = 86_400_000

export function emptyKeySet(): KeySet {
  return { version: 1, keys: {} }
}

export function currentKid(set: KeySet): string | undefined {
  return Object.entries(set.keys).find(([, record]) => record.status === 'current')?.[0]
}

/** Kids published in the JWKS: the current key first, then previous keys, newest first. */
export function publishedKids(set: KeySet): string[] {
  const rank = (status: KeyStatus) => (status === 'current' ? 0 : 1)
  return Object.entries(set.keys)
    .filter(([, record]) => record.status !== 'retired')
    .sort(([, a], [, b]) => rank(a.status) - rank(b.status) || b.created_at.localeCompare(a.created_at))
    .map(([kid]) => kid)
}

/** Whether a previous key's overlap has passed at `now`. */
export function isDue(record: KeyRecord, now: Date): boolean {
  return (
    record.status === 'previous' && record.retire_at !== null && Date.parse(record.retire_at) <= now.getTime()
  )
}

/** Retires every previous key whose overlap has passed; returns the new set and the kids retired. */
export function retireDueKeys(set: KeySet, now: Date): { set: KeySet; retired: string[] } {
  const retired: string[] = []
  const keys: KeySet['keys'] = {}
  for (const [kid, record] of Object.entries(set.keys)) {
    if (isDue(record, now)) {
      retired.push(kid)
      keys[kid] = { ...record, status: 'retired' }
    } else {
      keys[kid] = record
    }
  }
  return { set: { version: 1, keys }, retired }
}

/**
 * Makes `kid` the current key. The old current key becomes previous and stays published for
 * `overlapDays`, so tokens it signed keep verifying until they expire.
 */
export function rotateTo(
  set: KeySet,
  kid: string,
  alg: KeyRecord['alg'],
  now: Date,
  overlapDays: number,
): KeySet {
  const keys: KeySet['keys'] = {}
  const retireAt = new Date(now.getTime() + overlapDays * DAY_MS).toISOString()
  for (const [oldKid, record] of Object.entries(set.keys)) {
    keys[oldKid] =
      record.status === 'current' ? { ...record, status: 'previous', retire_at: retireAt } : record
  }
  keys[kid] = { alg, created_at: now.toISOString(), status: 'current', retire_at: null }
  return { version: 1, keys }
}

/** A fresh key set: every existing key is retired at once and `kid` becomes the only published key. */
export function replaceWith(set: KeySet, kid: string, alg: KeyRecord['alg'], now: Date): KeySet {
  const keys: KeySet['keys'] = {}
  for (const [oldKid, record] of Object.entries(set.keys)) {
    keys[oldKid] =
      record.status === 'retired' ? record : { ...record, status: 'retired', retire_at: now.toISOString() }
  }
  keys[kid] = { alg, created_at: now.toISOString(), status: 'current', retire_at: null }
  return { version: 1, keys }
}

/** Whole days since `iso` at `now` (floored). */
export function ageInDays(iso: string, now: Date): number {
  return Math.floor((now.getTime() - Date.parse(iso)) / DAY_MS)
}
