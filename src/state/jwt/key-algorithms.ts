import { createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto'
import { promisify } from 'node:util'
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose'
import type { JwtAlgorithm } from '../../shared/config-schema.js'

export const JWT_ALGORITHMS: readonly JwtAlgorithm[] = ['EdDSA', 'ES256', 'RS256']
export const DEFAULT_JWT_ALGORITHM: JwtAlgorithm = 'EdDSA'

/**
 * RS256 keys are 3072 bits: NIST SP 800-57 rates 2048 bits acceptable only until 2030, and node:crypto
 * generates 3072 bits in well under a second (pure-JS prime search would be far too slow).
 */
export const RSA_MODULUS_BITS = 3072

/** A public signing key as published in jwks.json: public members only, plus kid, alg and use. */
export interface PublicJwk extends JWK {
  kty: string
  kid: string
  alg: JwtAlgorithm
  use: 'sig'
}

export interface SigningKeyMaterial {
  kid: string
  alg: JwtAlgorithm
  /** PKCS#8 PEM of the private key. */
  privatePem: string
  publicJwk: PublicJwk
}

const generate = promisify(generateKeyPair)

async function generatePrivateKey(alg: JwtAlgorithm): Promise<KeyObject> {
  switch (alg) {
    case 'EdDSA':
      return (await generate('ed25519')).privateKey
    case 'ES256':
      return (await generate('ec', { namedCurve: 'P-256' })).privateKey
    case 'RS256':
      return (await generate('rsa', { modulusLength: RSA_MODULUS_BITS, publicExponent: 0x10001 })).privateKey
  }
}

/** The public members of each key type (RFC 7517/7518/8037); anything else (d, p, q…) is never published. */
const PUBLIC_MEMBERS: Record<string, readonly string[]> = {
  OKP: ['crv', 'x'],
  EC: ['crv', 'x', 'y'],
  RSA: ['n', 'e'],
}

/** Copies only the public members of a JWK (and kid, alg, use), whatever else it carries. */
export function publicMembersOnly(jwk: JWK): JWK {
  const source = jwk as Record<string, unknown>
  const kty = jwk.kty as string
  const out: Record<string, unknown> = { kty }
  for (const member of [...(PUBLIC_MEMBERS[kty] ?? []), 'kid', 'alg', 'use']) {
    if (source[member] !== undefined) out[member] = source[member]
  }
  return out as JWK
}

/** Derives the published JWK of a private key; kid is its RFC 7638 thumbprint (SHA-256, base64url). */
export async function publicJwkOf(privateKey: KeyObject, alg: JwtAlgorithm): Promise<PublicJwk> {
  const exported = (await exportJWK(createPublicKey(privateKey))) as Record<string, unknown>
  const kty = exported.kty as string
  const jwk: Record<string, unknown> = { kty }
  for (const member of PUBLIC_MEMBERS[kty] ?? []) jwk[member] = exported[member]
  const kid = await calculateJwkThumbprint(jwk as JWK, 'sha256')
  return { ...jwk, kid, alg, use: 'sig' } as PublicJwk
}

/** Checks that a private key is of the type its algorithm needs (a mismatched key must never sign). */
export function keyMatchesAlgorithm(privateKey: KeyObject, alg: JwtAlgorithm): boolean {
  const type = privateKey.asymmetricKeyType
  if (alg === 'EdDSA') return type === 'ed25519'
  if (alg === 'ES256') return type === 'ec' && privateKey.asymmetricKeyDetails?.namedCurve === 'prime256v1'
  return type === 'rsa' && (privateKey.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048
}

/** Generates a new signing key for `alg`, with its PKCS#8 PEM, public JWK and kid. */
export async function generateSigningKey(alg: JwtAlgorithm): Promise<SigningKeyMaterial> {
  const privateKey = await generatePrivateKey(alg)
  const publicJwk = await publicJwkOf(privateKey, alg)
  const privatePem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
  return { kid: publicJwk.kid, alg, privatePem, publicJwk }
}

/** Parses a PKCS#8 PEM into a KeyObject. */
export function parsePrivatePem(pem: string): KeyObject {
  return createPrivateKey({ key: pem, format: 'pem' })
}
