import type { HelixConfig } from '../../shared/config.js'
import type { HelixHome } from '../../shared/home.js'
import { requireCaCertificate } from './authority-store.js'
import { CERT_FILES, readCertificate, readCertificateBundle } from './cert-files.js'
import { type CertificateSummary, summarize } from './summary.js'

export interface ListResult {
  certificates: CertificateSummary[]
  /** One line per certificate that has expired or expires within tls.warn_days. */
  warnings: string[]
}

/** `helix certs list`: the CA, any older CA still trusted through ca-bundle.crt, and the leaves. */
export async function listCertificates(
  home: HelixHome,
  config: HelixConfig,
  now = new Date(),
): Promise<ListResult> {
  const warnDays = config.tls.warn_days
  const ca = await requireCaCertificate(home)
  const certificates = [summarize(ca, 'ca', warnDays, now)]
  for (const older of await readCertificateBundle(home, CERT_FILES.caBundle)) {
    if (!older.certificate.raw.equals(ca.certificate.raw))
      certificates.push(summarize(older, 'previous-ca', warnDays, now))
  }
  for (const [file, role] of [
    [CERT_FILES.serverCert, 'server'],
    [CERT_FILES.clientCert, 'client'],
  ] as const) {
    const leaf = await readCertificate(home, file)
    if (leaf) certificates.push(summarize(leaf, role, warnDays, now))
  }
  return { certificates, warnings: certificates.flatMap((c) => (c.warning ? [c.warning] : [])) }
}
