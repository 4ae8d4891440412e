import { readFile, rm } from 'node:fs/promises'
import { relative } from 'node:path'
import { Value } from '@sinclair/typebox/value'
import type { JSONWebKeySet } from 'jose'
import { commitFiles, type PlannedFile, PRIVATE_MODE, PUBLIC_MODE } from '../../shared/atomic-write.js'
import { UserError } from '../../shared/errors.js'
import { exists, type HelixHome } from '../../shared/home.js'
import {
  keyMatchesAlgorithm,
  type PublicJwk,
  parsePrivatePem,
  publicJwkOf,
  type SigningKeyMaterial,
} from './key-algorithms.js'
import { type KeySet, KeySetSchema, KID_PATTERN, publishedKids } from './key-set.js'

export const KEY_SET_FILE = 'keys.json'
export const JWKS_FILE = 'jwks.json'
export const PRIVATE_KEY_SUFFIX = '.private.pem'

export function keySetPath(home: HelixHome): string {
  return home.path('keys', KEY_SET_FILE)
}
export function jwksPath(home: HelixHome): string {
  return home.path('keys', JWKS_FILE)
}
export function privateKeyPath(home: HelixHome, kid: string): string {
  return home.path('keys', `${kid}${PRIVATE_KEY_SUFFIX}`)
}
/** Paths in reports are relative to the helix directory, e.g. keys/jwks.json. */
export function inHome(home: HelixHome, path: string): string {
  return relative(home.root, path)
}

export function keysMissing(home: HelixHome): UserError {
  return new UserError('KEYS_MISSING', `No JWT signing keys in ${home.path('keys')}.`, {
    hint: 'Run `helix keys generate` (or `helix init`) to create them, or `helix keys restore` from a backup.',
  })
}

export function keysCorrupt(home: HelixHome, what: string, cause?: unknown): UserError {
  return new UserError('KEYS_CORRUPT', `JWT keys in ${home.path('keys')} are damaged: ${what}.`, {
    hint: 'Restore them with `helix keys restore <backup>`, or start a fresh set with `helix keys generate --force`.',
    cause,
  })
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** Validates the text of keys.json; a bad file is KEYS_CORRUPT, never a crash. */
export function parseKeySet(home: HelixHome, text: string): KeySet {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (err) {
    throw keysCorrupt(home, `${KEY_SET_FILE} is not valid JSON`, err)
  }
  if (!Value.Check(KeySetSchema, raw)) throw keysCorrupt(home, `${KEY_SET_FILE} does not match its schema`)
  const set = raw as KeySet
  const bad = Object.keys(set.keys).find((kid) => !KID_PATTERN.test(kid))
  if (bad !== undefined) throw keysCorrupt(home, `${KEY_SET_FILE} holds an invalid kid '${bad}'`)
  const undated = Object.values(set.keys).some(
    (r) =>
      Number.isNaN(Date.parse(r.created_at)) ||
      (r.retire_at !== null && Number.isNaN(Date.parse(r.retire_at))),
  )
  if (undated) throw keysCorrupt(home, `${KEY_SET_FILE} holds a date that is not ISO 8601`)
  if (Object.values(set.keys).filter((r) => r.status === 'current').length > 1) {
    throw keysCorrupt(home, `${KEY_SET_FILE} marks more than one key as current`)
  }
  return set
}

/** keys/keys.json, or undefined when no key was ever generated here. */
export async function readKeySet(home: HelixHome): Promise<KeySet | undefined> {
  const text = await readOptional(keySetPath(home))
  return text === undefined ? undefined : parseKeySet(home, text)
}

/** keys/jwks.json as written, or undefined when it is missing. */
export async function readJwksFile(home: HelixHome): Promise<JSONWebKeySet | undefined> {
  const text = await readOptional(jwksPath(home))
  if (text === undefined) return undefined
  try {
    const parsed = JSON.parse(text) as JSONWebKeySet
    if (!Array.isArray(parsed?.keys)) throw new TypeError('no keys array')
    return parsed
  } catch (err) {
    throw keysCorrupt(home, `${JWKS_FILE} is not a JSON Web Key Set`, err)
  }
}

/** The private PEM of `kid`; a published key without its private key file is damage. */
export async function readPrivatePem(home: HelixHome, kid: string): Promise<string> {
  const pem = await readOptional(privateKeyPath(home, kid))
  if (pem === undefined) throw keysCorrupt(home, `the private key of ${kid} is missing`)
  return pem
}

/** Re-derives the public JWK of a stored key and checks it really is the key its kid names. */
async function storedPublicJwk(home: HelixHome, kid: string, alg: PublicJwk['alg']): Promise<PublicJwk> {
  const pem = await readPrivatePem(home, kid)
  let jwk: PublicJwk
  try {
    const key = parsePrivatePem(pem)
    if (!keyMatchesAlgorithm(key, alg)) throw new TypeError(`not an ${alg} key`)
    jwk = await publicJwkOf(key, alg)
  } catch (err) {
    throw keysCorrupt(home, `${kid}${PRIVATE_KEY_SUFFIX} is not a valid ${alg} private key`, err)
  }
  if (jwk.kid !== kid)
    throw keysCorrupt(home, `${kid}${PRIVATE_KEY_SUFFIX} holds a key with another thumbprint`)
  return jwk
}

/** The JWKS of a key set: public members of its current and previous keys. */
export async function buildJwks(
  home: HelixHome,
  set: KeySet,
  fresh: SigningKeyMaterial[] = [],
): Promise<JSONWebKeySet> {
  const keys: PublicJwk[] = []
  for (const kid of publishedKids(set)) {
    const generated = fresh.find((k) => k.kid === kid)
    keys.push(generated ? generated.publicJwk : await storedPublicJwk(home, kid, set.keys[kid].alg))
  }
  return { keys }
}

export function serialiseJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`
}

/**
 * Writes new private keys, jwks.json and keys.json in one all-or-nothing commit (keys.json last, as the
 * source of truth), then deletes the private keys of retired kids. Returns the paths written and removed.
 */
export async function saveKeySet(
  home: HelixHome,
  set: KeySet,
  fresh: SigningKeyMaterial[] = [],
): Promise<{ written: string[]; removed: string[] }> {
  const jwks = await buildJwks(home, set, fresh)
  const files: PlannedFile[] = [
    ...fresh.map((k) => ({ path: privateKeyPath(home, k.kid), data: k.privatePem, mode: PRIVATE_MODE })),
    { path: jwksPath(home), data: serialiseJson(jwks), mode: PUBLIC_MODE },
    { path: keySetPath(home), data: serialiseJson(set), mode: PUBLIC_MODE },
  ]
  await commitFiles(files)
  const removed = await removeRetiredKeyFiles(home, set)
  return { written: files.map((f) => inHome(home, f.path)), removed }
}

/** Deletes the private key files of retired kids that are still on disk (a key that is retired must not sign). */
export async function removeRetiredKeyFiles(home: HelixHome, set: KeySet): Promise<string[]> {
  const removed: string[] = []
  for (const [kid, record] of Object.entries(set.keys)) {
    const path = privateKeyPath(home, kid)
    if (record.status === 'retired' && (await exists(path))) {
      await rm(path, { force: true })
      removed.push(inHome(home, path))
    }
  }
  return removed
}
