import { createPrivateKey, createPublicKey, type KeyObject, webcrypto } from 'node:crypto'
import type { KeyType } from '../../shared/config-schema.js'
import { UserError } from '../../shared/errors.js'

type CryptoKey = webcrypto.CryptoKey

/** Who a key is for: the CA gets a stronger RSA modulus than the short-lived leaves. */
export type KeyRole = 'ca' | 'leaf'

/**
 * RSA sizes: 3072 bits for the 10-year CA (NIST SP 800-57: 128-bit security beyond 2030), 2048 for
 * leaves that live at most 397 days. ECDSA is P-256 for both (Mozilla intermediate accepts it everywhere).
 */
export const RSA_BITS: Record<KeyRole, number> = { ca: 3072, leaf: 2048 }

/** A key pair usable for signing with @peculiar/x509, plus its PKCS#8 PEM for the key file. */
export interface SigningKeyPair {
  keyType: KeyType
  privateKey: CryptoKey
  publicKey: CryptoKey
  privateKeyPem: string
}

function algorithmFor(keyType: KeyType): webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams {
  return keyType === 'ecdsa'
    ? { name: 'ECDSA', namedCurve: 'P-256' }
    : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
}

/** The signature algorithm a key of this type signs certificates with (always SHA-256). */
export function signingAlgorithmFor(keyType: KeyType): webcrypto.EcdsaParams | webcrypto.Algorithm {
  return keyType === 'ecdsa' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' }
}

function toPem(der: ArrayBuffer | Buffer, label: string): string {
  const b64 = Buffer.from(der as ArrayBuffer).toString('base64')
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`
}

/** Generates a fresh key pair with node's native crypto. */
export async function generateKeyPair(keyType: KeyType, role: KeyRole): Promise<SigningKeyPair> {
  const params =
    keyType === 'ecdsa'
      ? { name: 'ECDSA', namedCurve: 'P-256' }
      : {
          name: 'RSASSA-PKCS1-v1_5',
          hash: 'SHA-256',
          modulusLength: RSA_BITS[role],
          publicExponent: new Uint8Array([1, 0, 1]),
        }
  const pair = (await webcrypto.subtle.generateKey(params, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', pair.privateKey)
  return {
    keyType,
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
    privateKeyPem: toPem(pkcs8, 'PRIVATE KEY'),
  }
}

/** The key type of a node KeyObject, or undefined for algorithms Helix does not issue with. */
export function keyTypeOf(key: KeyObject): KeyType | undefined {
  if (key.asymmetricKeyType === 'rsa') return 'rsa'
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ecdsa'
  return undefined
}

/**
 * Reads a PEM private key (PKCS#8, or the PKCS#1/SEC1 forms openssl writes) into a signing key pair.
 * `file` names it in errors, relative to the helix directory.
 */
export async function importPrivateKeyPem(pem: string, file: string): Promise<SigningKeyPair> {
  let key: KeyObject
  try {
    key = createPrivateKey(pem)
  } catch (cause) {
    throw new UserError('CERT_KEY_CORRUPT', `${file} is not a readable PEM private key.`, {
      hint: `Restore ${file} from a backup, or regenerate it (see \`helix certs --help\`).`,
      cause,
    })
  }
  const keyType = keyTypeOf(key)
  if (!keyType) {
    throw new UserError(
      'CERT_KEY_UNSUPPORTED',
      `${file} holds a ${key.asymmetricKeyType} key; Helix signs with ECDSA P-256 or RSA.`,
      {
        hint: 'Replace it with an ECDSA P-256 or RSA key, or let Helix generate one with --force.',
      },
    )
  }
  const der = key.export({ type: 'pkcs8', format: 'der' })
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' })
  const algorithm = algorithmFor(keyType)
  const privateKey = await webcrypto.subtle.importKey('pkcs8', der, algorithm, true, ['sign'])
  const publicKey = await webcrypto.subtle.importKey('spki', spki, algorithm, true, ['verify'])
  return { keyType, privateKey, publicKey, privateKeyPem: pem }
}

/** PKCS#8 DER of a pair's private key (what PKCS#12 wraps). */
export async function privateKeyDer(pair: SigningKeyPair): Promise<Buffer> {
  return Buffer.from(await webcrypto.subtle.exportKey('pkcs8', pair.privateKey))
}

/** SubjectPublicKeyInfo DER of a pair's public key, to match a key against a certificate. */
export async function publicKeyDer(pair: SigningKeyPair): Promise<Buffer> {
  return Buffer.from(await webcrypto.subtle.exportKey('spki', pair.publicKey))
}

export { toPem }
