import { type Algorithm, hash, verify } from '@node-rs/argon2'
import { normalisePassword } from './password-policy.js'

/** argon2id cost; the floor is OWASP's password storage cheat sheet (m=19456 KiB, t=2, p=1). */
export interface Argon2Params {
  memoryKiB: number
  timeCost: number
  parallelism: number
}

export const MIN_ARGON2_PARAMS: Argon2Params = { memoryKiB: 19456, timeCost: 2, parallelism: 1 }

// Algorithm is a const enum in the typings; 2 is Argon2id. The value is written out so it also works
// where the enum is not inlined (vitest's transpiler).
const ARGON2ID = 2 as Algorithm

function atLeastFloor(params: Argon2Params): Argon2Params {
  return {
    memoryKiB: Math.max(params.memoryKiB, MIN_ARGON2_PARAMS.memoryKiB),
    timeCost: Math.max(params.timeCost, MIN_ARGON2_PARAMS.timeCost),
    parallelism: Math.max(params.parallelism, MIN_ARGON2_PARAMS.parallelism),
  }
}

/** Hashes a password with argon2id into a PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash). */
export async function hashPassword(
  password: string,
  params: Argon2Params = MIN_ARGON2_PARAMS,
): Promise<string> {
  const p = atLeastFloor(params)
  return hash(normalisePassword(password), {
    algorithm: ARGON2ID,
    memoryCost: p.memoryKiB,
    timeCost: p.timeCost,
    parallelism: p.parallelism,
  })
}

/** Verifies a password against a PHC string; a malformed hash verifies as false, never throws. */
export async function verifyPassword(phc: string, password: string): Promise<boolean> {
  if (!phc.startsWith('$argon2id$')) return false
  try {
    return await verify(phc, normalisePassword(password))
  } catch {
    return false
  }
}

let dummyHash: Promise<string> | undefined

/**
 * Burns the same time as a real verification. Login and password-forgot call it when the account does
 * not exist, so response time does not reveal which e-mails are registered.
 */
export async function verifyAgainstDummy(
  password: string,
  params: Argon2Params = MIN_ARGON2_PARAMS,
): Promise<false> {
  dummyHash ??= hashPassword('helix-dummy-password-for-timing', params)
  await verifyPassword(await dummyHash, password)
  return false
}

/** True when a stored hash is weaker than the configured cost (rehash after the next good login). */
export function needsRehash(phc: string, params: Argon2Params = MIN_ARGON2_PARAMS): boolean {
  const match = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$/.exec(phc)
  if (!match) return true
  const p = atLeastFloor(params)
  return Number(match[1]) < p.memoryKiB || Number(match[2]) < p.timeCost || Number(match[3]) < p.parallelism
}
