import { commitFiles } from '../../shared/atomic-write.js'
import type { HelixConfig } from '../../shared/config.js'
import type { KeyType } from '../../shared/config-schema.js'
import { UserError } from '../../shared/errors.js'
import type { FileReport } from '../../shared/file-report.js'
import type { HelixHome } from '../../shared/home.js'
import { loadAuthority } from '../../state/certs/authority-store.js'
import { CERT_FILES, parseCertificates } from '../../state/certs/cert-files.js'
import type { Authority, LeafKind } from '../../state/certs/certificate-profiles.js'
import { serverSubjectAltNames } from '../../state/certs/subject-alt-names.js'
import { type CertificateSummary, summarize } from '../../state/certs/summary.js'
import { DEFAULT_CLIENT_NAME } from './certificates.js'
import { issuedNames, planClient, planServer } from './issuance.js'
import { generateP12Password, validateP12Password } from './p12-password.js'

export interface IssueOptions {
  /** Extra SANs for a server certificate, on top of helix.yaml's domain and sans. */
  sans?: string[]
  days?: number
  /** Common name; default the configured domain (server) or helix-client (client). */
  name?: string
  /** Password for client.p12; generated (and returned once) when absent. */
  p12Password?: string
  keyType?: KeyType
}

export interface IssueResult extends FileReport {
  kind: LeafKind
  certificate: CertificateSummary
  /** Generated client.p12 password: shown once, never stored. Absent when given by the caller. */
  clientP12Password?: string
}

function onlyFor(flag: string, kind: LeafKind): UserError {
  return new UserError('USAGE', `${flag} applies to ${kind} certificates only.`, {
    hint: `Drop ${flag}, or run \`helix certs issue ${kind}\`.`,
  })
}

/** The key type of new leaves: the caller's, else helix.yaml's, else the CA's own. */
export function leafKeyType(config: HelixConfig, authority: Authority, requested?: KeyType): KeyType {
  return requested ?? config.tls.key_type ?? authority.keys.keyType
}

/**
 * `helix certs issue server|client`: a fresh key and leaf signed by the existing CA, replacing that
 * leaf's files in one all-or-nothing commit. All options are checked before any key is generated.
 */
export async function issueCertificate(
  home: HelixHome,
  config: HelixConfig,
  kind: LeafKind,
  options: IssueOptions = {},
): Promise<IssueResult> {
  if (kind === 'server' && options.p12Password !== undefined) throw onlyFor('--p12-password', 'client')
  if (kind === 'client' && options.sans?.length) throw onlyFor('--san', 'server')
  const authority = await loadAuthority(home)
  const keyType = leafKeyType(config, authority, options.keyType)
  const warnDays = config.tls.warn_days
  if (kind === 'server') {
    const plan = await planServer(home, authority, {
      keyType,
      commonName: options.name ?? config.domain,
      sans: serverSubjectAltNames(config, options.sans),
      days: options.days ?? config.tls.server_days,
    })
    await commitFiles(plan.files)
    const certificate = summarize(
      parseCertificates(plan.issued.pem, CERT_FILES.serverCert)[0],
      'server',
      warnDays,
    )
    return { kind, created: issuedNames(plan), kept: [], certificate }
  }
  const generated = options.p12Password === undefined ? generateP12Password() : undefined
  const plan = await planClient(home, authority, {
    keyType,
    commonName: options.name ?? DEFAULT_CLIENT_NAME,
    days: options.days ?? config.tls.client_days,
    p12Password: generated ?? validateP12Password(options.p12Password!),
  })
  await commitFiles(plan.files)
  const certificate = summarize(
    parseCertificates(plan.issued.pem, CERT_FILES.clientCert)[0],
    'client',
    warnDays,
  )
  return {
    kind,
    created: issuedNames(plan),
    kept: [],
    certificate,
    ...(generated ? { clientP12Password: generated } : {}),
  }
}
