import type { JwtAlgorithm } from '../shared/config-schema.js'
import type { HelixHome } from '../shared/home.js'
import { currentKid } from '../state/jwt/key-set.js'
import { readKeySet } from '../state/jwt/key-store.js'

const DAY_MS = 86_400_000

/** The current JWT signing key and its age, from keys/keys.json; undefined when no key exists. */
export async function currentKeyAge(
  home: HelixHome,
  now: Date,
): Promise<{ kid?: string; alg?: JwtAlgorithm; ageDays?: number; exists: boolean }> {
  const set = await readKeySet(home)
  if (!set) return { exists: false }
  const kid = currentKid(set)
  if (!kid) return { exists: true }
  const record = set.keys[kid]
  return {
    exists: true,
    kid,
    alg: record.alg,
    ageDays: Math.floor((now.getTime() - Date.parse(record.created_at)) / DAY_MS),
  }
}
