import { commitFiles } from '../../shared/atomic-write.js'
import type { HelixConfig } from '../../shared/config.js'
import type { FileReport } from '../../shared/file-report.js'
import { exists, type HelixHome } from '../../shared/home.js'
import { caIncomplete, loadAuthority, requireCaCertificate } from '../../state/certs/authority-store.js'
import {
  CERT_FILES,
  type CertFile,
  certPath,
  readCertificate,
  readOptional,
} from '../../state/certs/cert-files.js'
import type { Authority } from '../../state/certs/certificate-profiles.js'
import { importPrivateKeyPem } from '../../state/certs/key-pair.js'
import { serverSubjectAltNames } from '../../state/certs/subject-alt-names.js'
import {
  type Issuance,
  issuedNames,
  mergeIssuances,
  planAuthority,
  planBundle,
  planClient,
  planClientP12,
  planServer,
} from './issuance.js'
import { generateP12Password } from './p12-password.js'

export interface CertificatesReport extends FileReport {
  /** Generated password of a newly created client.p12: shown once, never stored. */
  clientP12Password?: string
}

/** The default common name of the mTLS client certificate. */
export const DEFAULT_CLIENT_NAME = 'helix-client'

async function presentFiles(home: HelixHome): Promise<Set<CertFile>> {
  const present = new Set<CertFile>()
  for (const file of Object.values(CERT_FILES)) if (await exists(certPath(home, file))) present.add(file)
  return present
}

/** Rebuilds client.p12 around an existing client key and certificate (they stay byte-identical). */
async function planP12ForExistingClient(home: HelixHome, password: string): Promise<Issuance> {
  const ca = await requireCaCertificate(home)
  const cert = (await readCertificate(home, CERT_FILES.clientCert))!
  const keys = await importPrivateKeyPem(
    (await readOptional(home, CERT_FILES.clientKey))!,
    CERT_FILES.clientKey,
  )
  const commonName = /(?:^|\n)CN=([^\n]*)/.exec(cert.certificate.subject)?.[1] ?? DEFAULT_CLIENT_NAME
  return planClientP12(home, keys, cert.certificate.raw, [ca.certificate.raw], password, commonName)
}

/**
 * What `helix init` needs: a CA, a server leaf and a client leaf with its client.p12. Whatever exists is
 * kept byte-identical (reported as kept); `force` regenerates all of it. A new CA always brings new
 * leaves, since the old ones would not chain to it. Everything is written in one all-or-nothing commit.
 */
export async function ensureCertificates(
  home: HelixHome,
  config: HelixConfig,
  options: { force?: boolean } = {},
): Promise<CertificatesReport> {
  const force = Boolean(options.force)
  const present = await presentFiles(home)
  const has = (file: CertFile) => present.has(file)
  if (!force && !has(CERT_FILES.caCert) && has(CERT_FILES.caKey)) {
    throw caIncomplete(CERT_FILES.caCert)
  }
  const keyType = config.tls.key_type ?? 'ecdsa'
  const parts: Issuance[] = []
  let authority: Authority | undefined
  const newCa = force || !has(CERT_FILES.caCert)
  if (newCa) {
    const ca = await planAuthority(home, keyType, config.tls.ca_years)
    authority = ca.authority
    parts.push(ca)
    // A regenerated CA ends any roll in progress: the bundle trusts the new CA alone.
    if (has(CERT_FILES.caBundle)) parts.push(planBundle(home, [ca.pem]))
  }
  const signer = async () => {
    authority ??= await loadAuthority(home)
    return authority
  }

  if (newCa || !has(CERT_FILES.serverCert) || !has(CERT_FILES.serverKey)) {
    const sans = serverSubjectAltNames(config)
    parts.push(
      await planServer(home, await signer(), {
        keyType,
        commonName: config.domain,
        sans,
        days: config.tls.server_days,
      }),
    )
  }
  let clientP12Password: string | undefined
  if (newCa || !has(CERT_FILES.clientCert) || !has(CERT_FILES.clientKey)) {
    clientP12Password = generateP12Password()
    const request = {
      keyType,
      commonName: DEFAULT_CLIENT_NAME,
      days: config.tls.client_days,
      p12Password: clientP12Password,
    }
    parts.push(await planClient(home, await signer(), request))
  } else if (!has(CERT_FILES.clientP12)) {
    clientP12Password = generateP12Password()
    parts.push(await planP12ForExistingClient(home, clientP12Password))
  }

  const issuance = mergeIssuances(...parts)
  await commitFiles(issuance.files)
  const created: string[] = issuedNames(issuance)
  const kept = Object.values(CERT_FILES).filter((file) => has(file) && !created.includes(file))
  return { created, kept, ...(clientP12Password ? { clientP12Password } : {}) }
}
