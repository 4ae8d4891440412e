import { isIP } from 'node:net'
import type { HelixConfig } from '../../shared/config.js'
import type { ErrorCode } from '../../shared/error-codes.js'
import { Failure } from '../../shared/errors.js'
import type { HelixHome } from '../../shared/home.js'
import { certificateMatchesKeys, requireCaCertificate } from '../../state/certs/authority-store.js'
import {
  CERT_FILES,
  type CertFile,
  readCertificate,
  readCertificateBundle,
  readOptional,
  type StoredCertificate,
} from '../../state/certs/cert-files.js'
import { importPrivateKeyPem } from '../../state/certs/key-pair.js'
import { parseSubjectAltName } from '../../state/certs/subject-alt-names.js'
import { oneLineName } from '../../state/certs/summary.js'

export type CheckName = 'present' | 'key' | 'chain' | 'validity' | 'purpose' | 'host'

export interface VerifyCheck {
  file: string
  check: CheckName
  ok: boolean
  /** Stable CERT_* code of a failed check. */
  code?: ErrorCode
  detail: string
}

export interface VerifyResult {
  ok: boolean
  host: string
  checks: VerifyCheck[]
}

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1'
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'

function pass(file: string, check: CheckName, detail: string): VerifyCheck {
  return { file, check, ok: true, detail }
}

function fail(file: string, check: CheckName, code: ErrorCode, detail: string): VerifyCheck {
  return { file, check, ok: false, code, detail }
}

function validityCheck(stored: StoredCertificate, now: Date): VerifyCheck {
  const from = new Date(stored.certificate.validFrom)
  const to = new Date(stored.certificate.validTo)
  if (now < from)
    return fail(stored.file, 'validity', 'CERT_NOT_YET_VALID', `not valid before ${from.toISOString()}`)
  if (now > to) return fail(stored.file, 'validity', 'CERT_EXPIRED', `expired ${to.toISOString()}`)
  return pass(stored.file, 'validity', `valid until ${to.toISOString()}`)
}

/** The trust anchor that signed the leaf, if any: issuer name matches and the signature verifies. */
function chainCheck(leaf: StoredCertificate, anchors: StoredCertificate[]): VerifyCheck {
  const issuer = anchors.find(
    (a) =>
      a.certificate.ca &&
      leaf.certificate.checkIssued(a.certificate) &&
      leaf.certificate.verify(a.certificate.publicKey),
  )
  if (!issuer) {
    return fail(
      leaf.file,
      'chain',
      'CERT_UNTRUSTED',
      `not signed by ${anchors.map((a) => a.file).join(' or ')} (issuer ${oneLineName(leaf.certificate.issuer)})`,
    )
  }
  return pass(leaf.file, 'chain', `signed by ${oneLineName(issuer.certificate.subject)} (${issuer.file})`)
}

function hostCheck(leaf: StoredCertificate, host: string): VerifyCheck {
  const matched = isIP(host) ? leaf.certificate.checkIP(host) : leaf.certificate.checkHost(host)
  return matched
    ? pass(leaf.file, 'host', `matches ${host}`)
    : fail(leaf.file, 'host', 'CERT_HOST_MISMATCH', `no SAN matches ${host}`)
}

async function leafChecks(
  home: HelixHome,
  files: { cert: CertFile; key: CertFile; purpose: string; purposeName: string },
  anchors: StoredCertificate[],
  now: Date,
  host?: string,
): Promise<VerifyCheck[]> {
  const leaf = await readCertificate(home, files.cert)
  if (!leaf)
    return [fail(files.cert, 'present', 'CERT_MISSING', 'missing (issue it with `helix certs issue`)')]
  const checks = [chainCheck(leaf, anchors), validityCheck(leaf, now)]
  const ekus = leaf.certificate.keyUsage ?? []
  checks.push(
    ekus.includes(files.purpose)
      ? pass(leaf.file, 'purpose', files.purposeName)
      : fail(leaf.file, 'purpose', 'CERT_WRONG_PURPOSE', `lacks extended key usage ${files.purposeName}`),
  )
  if (host !== undefined) checks.push(hostCheck(leaf, host))
  const keyPem = await readOptional(home, files.key)
  if (keyPem === undefined) {
    checks.push(fail(files.key, 'key', 'CERT_KEY_MISSING', 'missing'))
  } else {
    const matches = await certificateMatchesKeys(leaf, await importPrivateKeyPem(keyPem, files.key))
    checks.push(
      matches
        ? pass(files.key, 'key', `belongs to ${files.cert}`)
        : fail(files.key, 'key', 'CERT_KEY_MISMATCH', `does not belong to ${files.cert}`),
    )
  }
  return checks
}

/**
 * `helix certs verify`: the CA is valid; server and client leaves chain to ca.crt (or to a CA still in
 * ca-bundle.crt during a roll), are within their validity, carry their EKU and match their key; the
 * server certificate names the host (default: the configured domain).
 */
export async function verifyCertificates(
  home: HelixHome,
  config: HelixConfig,
  options: { host?: string; now?: Date } = {},
): Promise<VerifyResult> {
  const now = options.now ?? new Date()
  const host = parseSubjectAltName(options.host ?? config.domain, '--host').value
  const ca = await requireCaCertificate(home)
  const bundle = await readCertificateBundle(home, CERT_FILES.caBundle)
  const anchors = [ca, ...bundle.filter((b) => !b.certificate.raw.equals(ca.certificate.raw))]
  const checks = [
    ...anchors.map((anchor) => validityCheck(anchor, now)),
    ...(await leafChecks(
      home,
      {
        cert: CERT_FILES.serverCert,
        key: CERT_FILES.serverKey,
        purpose: SERVER_AUTH,
        purposeName: 'serverAuth',
      },
      anchors,
      now,
      host,
    )),
    ...(await leafChecks(
      home,
      {
        cert: CERT_FILES.clientCert,
        key: CERT_FILES.clientKey,
        purpose: CLIENT_AUTH,
        purposeName: 'clientAuth',
      },
      anchors,
      now,
    )),
  ]
  return { ok: checks.every((c) => c.ok), host, checks }
}

/** The error `certs verify` exits with (1) when a check failed: the first failure's code. */
export function verificationFailure(result: VerifyResult): Failure {
  const failed = result.checks.filter((c) => !c.ok)
  const first = failed[0]
  return new Failure(
    first.code!,
    `${first.file}: ${first.detail}${failed.length > 1 ? ` (and ${failed.length - 1} more failed check${failed.length > 2 ? 's' : ''})` : ''}`,
    {
      hint: 'Re-issue the failing leaf with `helix certs issue server|client` or `helix certs rotate` (`--ca` when the CA itself failed).',
      details: { checks: failed },
    },
  )
}
