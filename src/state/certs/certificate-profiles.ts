import { randomBytes } from 'node:crypto'
import { type SigningKeyPair, signingAlgorithmFor } from './key-pair.js'
import { randomSerialNumber } from './serial-number.js'
import type { Validity } from './validity.js'
import { x509 } from './x509-provider.js'

const { KeyUsageFlags } = x509

/** A certificate just built, with the key pair it certifies. */
export interface IssuedCertificate {
  certificate: x509.X509Certificate
  keys: SigningKeyPair
  pem: string
}

/** The CA that signs leaves: its certificate and key. */
export interface Authority {
  certificate: x509.X509Certificate
  keys: SigningKeyPair
}

/** One subject alternative name of a server certificate. */
export interface SubjectAltName {
  type: 'dns' | 'ip'
  value: string
}

/** PEM text ending in a newline, so files and bundles of several certificates parse everywhere. */
export function pemOf(certificate: x509.X509Certificate): string {
  return `${certificate.toString('pem').trimEnd()}\n`
}

/** LDAP-style distinguished names need commas, plus signs and the like escaped (RFC 4514). */
function escapeDnValue(value: string): string {
  return value.replace(/[,+"\\<>;=]/g, '\\$&').replace(/^[ #]|[ ]$/g, '\\$&')
}

function subjectName(commonName: string): string {
  return `CN=${escapeDnValue(commonName)}, O=Helix`
}

/**
 * The root CA: self-signed, basicConstraints CA:true pathlen:0 (it signs leaves only, never another CA),
 * keyUsage keyCertSign + cRLSign, both critical (RFC 5280 4.2.1.9 / 4.2.1.3), and a key identifier.
 */
export async function buildCaCertificate(
  keys: SigningKeyPair,
  validity: Validity,
): Promise<IssuedCertificate> {
  // A short random suffix tells an old CA from its successor after `certs rotate --ca`.
  const name = subjectName(`Helix Root CA ${randomBytes(4).toString('hex')}`)
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: name,
    issuer: name,
    ...validity,
    publicKey: keys.publicKey,
    signingKey: keys.privateKey,
    signingAlgorithm: signingAlgorithmFor(keys.keyType),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      // Self-signed: the authority key is its own key (helps chain builders pick the right CA after a roll).
      await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
    ],
  })
  return { certificate, keys, pem: pemOf(certificate) }
}

export type LeafKind = 'server' | 'client'

export interface LeafRequest {
  kind: LeafKind
  commonName: string
  /** Server certificates only. */
  sans: SubjectAltName[]
  validity: Validity
}

/**
 * A leaf signed by the CA: CA:false, an EKU for its one purpose (serverAuth or clientAuth) and the key
 * usages TLS needs: digitalSignature, plus keyEncipherment for RSA servers (RSA key exchange in TLS 1.2).
 */
export async function buildLeafCertificate(
  authority: Authority,
  keys: SigningKeyPair,
  request: LeafRequest,
): Promise<IssuedCertificate> {
  const usages =
    request.kind === 'server' && keys.keyType === 'rsa'
      ? KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment
      : KeyUsageFlags.digitalSignature
  const purpose =
    request.kind === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(usages, true),
    new x509.ExtendedKeyUsageExtension([purpose]),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(authority.keys.publicKey),
  ]
  if (request.sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(request.sans))
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: subjectName(request.commonName),
    // The issuer's name bytes exactly as in the CA certificate, so chain building matches them.
    issuer: authority.certificate.subjectName,
    ...request.validity,
    publicKey: keys.publicKey,
    signingKey: authority.keys.privateKey,
    signingAlgorithm: signingAlgorithmFor(authority.keys.keyType),
    extensions,
  })
  return { certificate, keys, pem: pemOf(certificate) }
}
