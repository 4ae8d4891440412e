import type { KeyObject } from 'node:crypto'
import type { JSONWebKeySet, JWK } from 'jose'
import type { JwtAlgorithm } from '../../shared/config-schema.js'
import type { HelixHome } from '../../shared/home.js'
import { keyMatchesAlgorithm, parsePrivatePem, publicMembersOnly } from './key-algorithms.js'
import { currentKid, isDue } from './key-set.js'
import { keysCorrupt, keysMissing, readJwksFile, readKeySet, readPrivatePem } from './key-store.js'

export interface SigningKey {
  kid: string
  alg: JwtAlgorithm
  privateKey: KeyObject
}

/**
 * The key the daemon signs access tokens with (put `kid` and `alg` in the JWT header). Fails with
 * KEYS_MISSING when no key was generated and KEYS_CORRUPT when the files are damaged.
 */
export async function loadSigningKey(home: HelixHome): Promise<SigningKey> {
  const set = await readKeySet(home)
  const kid = set && currentKid(set)
  if (!set || !kid) throw keysMissing(home)
  const alg = set.keys[kid].alg
  const pem = await readPrivatePem(home, kid)
  let privateKey: KeyObject
  try {
    privateKey = parsePrivatePem(pem)
  } catch (err) {
    throw keysCorrupt(home, `the private key of ${kid} cannot be parsed`, err)
  }
  if (!keyMatchesAlgorithm(privateKey, alg))
    throw keysCorrupt(home, `the private key of ${kid} is not an ${alg} key`)
  return { kid, alg, privateKey }
}

/**
 * The JSON Web Key Set verifiers should trust at `now`: the keys of jwks.json that keys.json still
 * publishes (a previous key whose overlap has passed is left out even before `keys prune` runs), with
 * public members only. Use with jose's createLocalJWKSet and an algorithm allowlist.
 */
export async function loadJwks(home: HelixHome, options: { now?: Date } = {}): Promise<JSONWebKeySet> {
  const now = options.now ?? new Date()
  const set = await readKeySet(home)
  const jwks = await readJwksFile(home)
  if (!set || !jwks) throw keysMissing(home)
  const trusted = (jwk: JWK) => {
    const record = jwk.kid === undefined ? undefined : set.keys[jwk.kid]
    return (
      record !== undefined && record.status !== 'retired' && !isDue(record, now) && jwk.alg === record.alg
    )
  }
  return { keys: jwks.keys.filter(trusted).map(publicMembersOnly) }
}
