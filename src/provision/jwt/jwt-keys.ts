import { commitFiles, PUBLIC_MODE } from '../../shared/atomic-write.js'
import type { HelixConfig } from '../../shared/config.js'
import type { JwtAlgorithm } from '../../shared/config-schema.js'
import type { FileReport } from '../../shared/file-report.js'
import { exists, type HelixHome } from '../../shared/home.js'
import { DEFAULT_JWT_ALGORITHM, generateSigningKey } from '../../state/jwt/key-algorithms.js'
import {
  ageInDays,
  currentKid,
  emptyKeySet,
  type KeySet,
  type KeyStatus,
  replaceWith,
  retireDueKeys,
  rotateTo,
} from '../../state/jwt/key-set.js'
import {
  buildJwks,
  inHome,
  jwksPath,
  keySetPath,
  keysMissing,
  privateKeyPath,
  readKeySet,
  readPrivatePem,
  removeRetiredKeyFiles,
  saveKeySet,
  serialiseJson,
} from '../../state/jwt/key-store.js'

/** Every service call takes the clock as an option, so tests can move time past an overlap. */
export interface KeyServiceOptions {
  now?: Date
}

export interface KeyInfo {
  kid: string
  alg: JwtAlgorithm
  status: KeyStatus
  created_at: string
  age_days: number
  retire_at: string | null
}

export interface GenerateResult extends FileReport {
  kid: string
  alg: JwtAlgorithm
  /** Private key files deleted because --force retired their keys. */
  removed: string[]
}

export interface RotateResult {
  current: KeyInfo
  /** Keys still published so tokens they signed keep verifying, each until its retire_at. */
  previous: KeyInfo[]
  /** Kids whose overlap passed during this run: gone from the JWKS, private keys deleted. */
  retired: string[]
  created: string[]
  removed: string[]
  jwks: string
  warnings: string[]
}

export interface PruneResult {
  retired: string[]
  removed: string[]
}

export interface ListResult extends PruneResult {
  keys: KeyInfo[]
  warnings: string[]
}

function info(set: KeySet, kid: string, now: Date): KeyInfo {
  const record = set.keys[kid]
  return {
    kid,
    alg: record.alg,
    status: record.status,
    created_at: record.created_at,
    age_days: ageInDays(record.created_at, now),
    retire_at: record.retire_at,
  }
}

const STATUS_ORDER: Record<KeyStatus, number> = { current: 0, previous: 1, retired: 2 }

function sortedInfos(set: KeySet, now: Date): KeyInfo[] {
  return Object.keys(set.keys)
    .map((kid) => info(set, kid, now))
    .sort(
      (a, b) => STATUS_ORDER[a.status] - STATUS_ORDER[b.status] || b.created_at.localeCompare(a.created_at),
    )
}

/**
 * `helix keys generate`: creates the first signing key. When a current key exists it is kept
 * byte-identical (and reported as kept) unless `force`, which starts a fresh set: every old key is
 * retired at once, leaves the JWKS and has its private key deleted.
 */
export async function generateKeys(
  home: HelixHome,
  config: HelixConfig,
  options: KeyServiceOptions & { alg?: JwtAlgorithm; force?: boolean } = {},
): Promise<GenerateResult> {
  const now = options.now ?? new Date()
  const set = await readKeySet(home)
  const kid = set && currentKid(set)
  if (set && kid && !options.force) {
    const kept = [inHome(home, privateKeyPath(home, kid)), inHome(home, keySetPath(home))]
    await readPrivatePem(home, kid)
    const created: string[] = []
    // A deleted jwks.json is derived data: rebuild it from the kept keys rather than fail.
    if (await exists(jwksPath(home))) kept.splice(1, 0, inHome(home, jwksPath(home)))
    else {
      await commitFiles([
        { path: jwksPath(home), data: serialiseJson(await buildJwks(home, set)), mode: PUBLIC_MODE },
      ])
      created.push(inHome(home, jwksPath(home)))
    }
    return { kid, alg: set.keys[kid].alg, created, kept, removed: [] }
  }
  const alg = options.alg ?? config.jwt.algorithm ?? DEFAULT_JWT_ALGORITHM
  const key = await generateSigningKey(alg)
  const next = replaceWith(set ?? emptyKeySet(), key.kid, alg, now)
  const { written, removed } = await saveKeySet(home, next, [key])
  return { kid: key.kid, alg, created: written, kept: [], removed }
}

/** What `helix init` calls: the first key, or a fresh set with `force`; existing keys are kept. */
export async function ensureJwtKeys(
  home: HelixHome,
  config: HelixConfig,
  options: KeyServiceOptions & { force?: boolean } = {},
): Promise<FileReport> {
  const { created, kept } = await generateKeys(home, config, options)
  return { created, kept }
}

/**
 * `helix keys rotate`: a new current key. The old current key stays published as previous until
 * now + overlap_days, so tokens signed before the rotation keep verifying; keys whose overlap has
 * passed are retired in the same commit.
 */
export async function rotateKeys(
  home: HelixHome,
  config: HelixConfig,
  options: KeyServiceOptions & { alg?: JwtAlgorithm } = {},
): Promise<RotateResult> {
  const now = options.now ?? new Date()
  const set = await readKeySet(home)
  const oldKid = set && currentKid(set)
  if (!set || !oldKid) throw keysMissing(home)
  await readPrivatePem(home, oldKid)
  const alg = options.alg ?? config.jwt.algorithm ?? set.keys[oldKid].alg
  const key = await generateSigningKey(alg)
  const { set: next, retired } = retireDueKeys(rotateTo(set, key.kid, alg, now, config.jwt.overlap_days), now)
  const { written, removed } = await saveKeySet(home, next, [key])
  const infos = sortedInfos(next, now)
  const warnings: string[] = []
  // Tokens live access_ttl_s; an overlap shorter than that makes valid tokens fail before they expire.
  if (config.jwt.overlap_days * 86_400 < config.jwt.access_ttl_s) {
    warnings.push(
      `jwt.overlap_days (${config.jwt.overlap_days}) is shorter than the access token lifetime (${config.jwt.access_ttl_s} s): tokens signed by the old key stop verifying before they expire.`,
    )
  }
  return {
    current: infos[0],
    previous: infos.filter((k) => k.status === 'previous'),
    retired,
    created: written,
    removed,
    jwks: inHome(home, jwksPath(home)),
    warnings,
  }
}

/** Retires previous keys whose overlap has passed: out of jwks.json, private keys deleted. */
export async function pruneKeys(
  home: HelixHome,
  options: KeyServiceOptions = {},
): Promise<PruneResult & { set: KeySet }> {
  const now = options.now ?? new Date()
  const set = await readKeySet(home)
  if (!set) throw keysMissing(home)
  const { set: next, retired } = retireDueKeys(set, now)
  if (retired.length === 0) return { set, retired, removed: await removeRetiredKeyFiles(home, set) }
  const { removed } = await saveKeySet(home, next)
  return { set: next, retired, removed }
}

/** `helix keys list`: every key with its status and age, after retiring keys whose overlap passed. */
export async function listKeys(
  home: HelixHome,
  config: HelixConfig,
  options: KeyServiceOptions = {},
): Promise<ListResult> {
  const now = options.now ?? new Date()
  const { set, retired, removed } = await pruneKeys(home, { now })
  const keys = sortedInfos(set, now)
  const warnings: string[] = []
  const current = keys.find((k) => k.status === 'current')
  if (!current)
    warnings.push('No current signing key: run `helix keys generate --force` to start a fresh set.')
  else if (current.age_days > config.jwt.rotate_after_days) {
    warnings.push(
      `The current key ${current.kid} is ${current.age_days} days old (jwt.rotate_after_days is ${config.jwt.rotate_after_days}): run \`helix keys rotate\`.`,
    )
  }
  return { keys, retired, removed, warnings }
}
