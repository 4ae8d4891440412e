import type { PlannedFile } from '../../shared/atomic-write.js'
import { PRIVATE_MODE, PUBLIC_MODE } from '../../shared/atomic-write.js'
import type { KeyType } from '../../shared/config-schema.js'
import { UserError } from '../../shared/errors.js'
import type { HelixHome } from '../../shared/home.js'
import { CERT_FILES, type CertFile, certPath } from '../../state/certs/cert-files.js'
import {
  type Authority,
  buildCaCertificate,
  buildLeafCertificate,
  type IssuedCertificate,
  type SubjectAltName,
} from '../../state/certs/certificate-profiles.js'
import { generateKeyPair, privateKeyDer, type SigningKeyPair } from '../../state/certs/key-pair.js'
import { caValidity, leafValidity } from '../../state/certs/validity.js'
import { buildPkcs12 } from './pkcs12.js'

/** A file to write, with its name relative to the helix directory (for the report). */
export interface PlannedCertFile extends PlannedFile {
  name: CertFile
}

/** Files to write for one issuance, in the order they are committed. */
export interface Issuance {
  files: PlannedCertFile[]
}

function planned(home: HelixHome, file: CertFile, data: string | Uint8Array, mode: number): PlannedCertFile {
  return { path: certPath(home, file), name: file, data, mode }
}

/** The issuance's files relative to the helix directory, in commit order. */
export function issuedNames(issuance: Issuance): CertFile[] {
  return issuance.files.map((f) => f.name)
}

export function mergeIssuances(...parts: Issuance[]): Issuance {
  return { files: parts.flatMap((p) => p.files) }
}

/** A new root CA (key 0600). */
export async function planAuthority(
  home: HelixHome,
  keyType: KeyType,
  years: number,
): Promise<Issuance & { authority: Authority; pem: string }> {
  const keys = await generateKeyPair(keyType, 'ca')
  const issued = await buildCaCertificate(keys, caValidity(years))
  return {
    authority: { certificate: issued.certificate, keys },
    pem: issued.pem,
    files: [
      planned(home, CERT_FILES.caCert, issued.pem, PUBLIC_MODE),
      planned(home, CERT_FILES.caKey, keys.privateKeyPem, PRIVATE_MODE),
    ],
  }
}

/** The CA-certificate PEMs written to ca-bundle.crt (trusted during a CA roll). */
export function planBundle(home: HelixHome, pems: string[]): Issuance {
  return {
    files: [
      planned(home, CERT_FILES.caBundle, pems.map((pem) => `${pem.trimEnd()}\n`).join(''), PUBLIC_MODE),
    ],
  }
}

/** X.520 ub-common-name: a CN holds at most 64 characters. */
const MAX_COMMON_NAME = 64

export function validateCommonName(name: string): string {
  const trimmed = name.trim()
  if (trimmed.length === 0 || trimmed.length > MAX_COMMON_NAME || /[\p{Cc}]/u.test(trimmed)) {
    throw new UserError('CERT_NAME_INVALID', `'${name}' cannot be a certificate common name.`, {
      hint: `Give --name 1 to ${MAX_COMMON_NAME} printable characters, e.g. --name ci-runner.`,
    })
  }
  return trimmed
}

export interface ServerRequest {
  keyType: KeyType
  commonName: string
  sans: SubjectAltName[]
  days: number
}

export async function planServer(
  home: HelixHome,
  authority: Authority,
  request: ServerRequest,
): Promise<Issuance & { issued: IssuedCertificate }> {
  const validity = leafValidity(request.days)
  const keys = await generateKeyPair(request.keyType, 'leaf')
  const issued = await buildLeafCertificate(authority, keys, {
    kind: 'server',
    commonName: validateCommonName(request.commonName),
    sans: request.sans,
    validity,
  })
  return {
    issued,
    files: [
      planned(home, CERT_FILES.serverCert, issued.pem, PUBLIC_MODE),
      planned(home, CERT_FILES.serverKey, keys.privateKeyPem, PRIVATE_MODE),
    ],
  }
}

/** client.p12 (0600, it holds the key) from a client key, its certificate and the CA chain. */
export async function planClientP12(
  home: HelixHome,
  keys: SigningKeyPair,
  certificateDer: Buffer,
  caCertificatesDer: Buffer[],
  password: string,
  friendlyName: string,
): Promise<Issuance> {
  const p12 = buildPkcs12({
    privateKeyDer: await privateKeyDer(keys),
    certificateDer,
    caCertificatesDer,
    friendlyName,
    password,
  })
  return { files: [planned(home, CERT_FILES.clientP12, p12, PRIVATE_MODE)] }
}

export interface ClientRequest {
  keyType: KeyType
  commonName: string
  days: number
  p12Password: string
}

export async function planClient(
  home: HelixHome,
  authority: Authority,
  request: ClientRequest,
): Promise<Issuance & { issued: IssuedCertificate }> {
  const commonName = validateCommonName(request.commonName)
  const validity = leafValidity(request.days)
  const keys = await generateKeyPair(request.keyType, 'leaf')
  const issued = await buildLeafCertificate(authority, keys, {
    kind: 'client',
    commonName,
    sans: [],
    validity,
  })
  const p12 = await planClientP12(
    home,
    keys,
    Buffer.from(issued.certificate.rawData),
    [Buffer.from(authority.certificate.rawData)],
    request.p12Password,
    commonName,
  )
  return {
    issued,
    files: [
      planned(home, CERT_FILES.clientCert, issued.pem, PUBLIC_MODE),
      planned(home, CERT_FILES.clientKey, keys.privateKeyPem, PRIVATE_MODE),
      ...p12.files,
    ],
  }
}
