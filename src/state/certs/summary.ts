import type { X509Certificate } from 'node:crypto'
import type { StoredCertificate } from './cert-files.js'
import { keyTypeOf } from './key-pair.js'
import { subjectAltNamesOf } from './subject-alt-names.js'
import { daysUntil } from './validity.js'

/** What a certificate is for in the helix directory. */
export type CertificateRole = 'ca' | 'previous-ca' | 'server' | 'client'

/** The facts about one certificate that `certs list` and the other commands report. */
export interface CertificateSummary {
  role: CertificateRole
  file: string
  subject: string
  issuer: string
  /** DNS and IP SANs, e.g. "DNS:localhost", "IP:127.0.0.1". */
  sans: string[]
  serialNumber: string
  /** e.g. "ecdsa-p256", "rsa-3072". */
  key: string
  notBefore: string
  notAfter: string
  daysLeft: number
  /** Set when the certificate has expired or expires within tls.warn_days. */
  warning?: string
}

/** node prints a distinguished name one attribute per line. */
export function oneLineName(name: string): string {
  return name.split('\n').filter(Boolean).join(', ')
}

export function keyDescription(certificate: X509Certificate): string {
  const key = certificate.publicKey
  const type = keyTypeOf(key)
  if (type === 'ecdsa') return 'ecdsa-p256'
  if (type === 'rsa') return `rsa-${key.asymmetricKeyDetails?.modulusLength}`
  return String(key.asymmetricKeyType)
}

export function expiryWarning(file: string, daysLeft: number, warnDays: number): string | undefined {
  if (daysLeft < 0) return `${file} has expired.`
  if (daysLeft < warnDays)
    return `${file} expires in ${daysLeft} day${daysLeft === 1 ? '' : 's'} (under ${warnDays}).`
  return undefined
}

export function summarize(
  stored: StoredCertificate,
  role: CertificateRole,
  warnDays: number,
  now = new Date(),
): CertificateSummary {
  const { certificate } = stored
  const notAfter = new Date(certificate.validTo)
  const daysLeft = daysUntil(notAfter, now)
  const warning = expiryWarning(stored.file, daysLeft, warnDays)
  return {
    role,
    file: stored.file,
    subject: oneLineName(certificate.subject),
    issuer: oneLineName(certificate.issuer),
    sans: subjectAltNamesOf(stored.pem).map((n) => `${n.type === 'dns' ? 'DNS' : 'IP'}:${n.value}`),
    serialNumber: certificate.serialNumber,
    key: keyDescription(certificate),
    notBefore: new Date(certificate.validFrom).toISOString(),
    notAfter: notAfter.toISOString(),
    daysLeft,
    ...(warning ? { warning } : {}),
  }
}
