import { commitFiles } from '../../shared/atomic-write.js'
import type { HelixConfig } from '../../shared/config.js'
import type { KeyType } from '../../shared/config-schema.js'
import type { FileReport } from '../../shared/file-report.js'
import { exists, type HelixHome } from '../../shared/home.js'
import { caIncomplete } from '../../state/certs/authority-store.js'
import { CERT_FILES, certPath, parseCertificates, readCertificate } from '../../state/certs/cert-files.js'
import { type CertificateSummary, summarize } from '../../state/certs/summary.js'
import { issuedNames, planAuthority } from './issuance.js'

export interface CaResult extends FileReport {
  ca: CertificateSummary
  /** True when a CA was replaced while leaves signed by the old one exist: they must be re-issued. */
  leavesNeedReissue: boolean
}

/**
 * `helix certs ca`: creates the root CA when there is none and keeps an existing one byte-identical;
 * `force` replaces it (leaves then need re-issuing; `certs rotate --ca` is the gentle way to roll).
 */
export async function createAuthority(
  home: HelixHome,
  config: HelixConfig,
  options: { keyType?: KeyType; force?: boolean } = {},
): Promise<CaResult> {
  const existing = await readCertificate(home, CERT_FILES.caCert)
  const warnDays = config.tls.warn_days
  const keyExists = await exists(certPath(home, CERT_FILES.caKey))
  if (!options.force) {
    if (existing && keyExists) {
      return {
        created: [],
        kept: [CERT_FILES.caCert, CERT_FILES.caKey],
        ca: summarize(existing, 'ca', warnDays),
        leavesNeedReissue: false,
      }
    }
    if (existing || keyExists) throw caIncomplete(existing ? CERT_FILES.caKey : CERT_FILES.caCert)
  }
  const keyType = options.keyType ?? config.tls.key_type ?? 'ecdsa'
  const plan = await planAuthority(home, keyType, config.tls.ca_years)
  await commitFiles(plan.files)
  const leaves = [CERT_FILES.serverCert, CERT_FILES.clientCert]
  let leavesExist = false
  for (const leaf of leaves) leavesExist ||= await exists(certPath(home, leaf))
  const pem = plan.pem
  return {
    created: issuedNames(plan),
    kept: [],
    ca: summarize(parseCertificates(pem, CERT_FILES.caCert)[0], 'ca', warnDays),
    leavesNeedReissue: Boolean(existing) && leavesExist,
  }
}
