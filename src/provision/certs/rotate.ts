import { commitFiles } from '../../shared/atomic-write.js'
import type { HelixConfig } from '../../shared/config.js'
import type { FileReport } from '../../shared/file-report.js'
import type { HelixHome } from '../../shared/home.js'
import { loadAuthority, requireCaCertificate } from '../../state/certs/authority-store.js'
import {
  CERT_FILES,
  readCertificate,
  readCertificateBundle,
  type StoredCertificate,
} from '../../state/certs/cert-files.js'
import type { Authority } from '../../state/certs/certificate-profiles.js'
import { keyTypeOf } from '../../state/certs/key-pair.js'
import { serverSubjectAltNames, subjectAltNamesOf } from '../../state/certs/subject-alt-names.js'
import { DEFAULT_CLIENT_NAME } from './certificates.js'
import {
  type Issuance,
  issuedNames,
  mergeIssuances,
  planAuthority,
  planBundle,
  planClient,
  planServer,
} from './issuance.js'
import { leafKeyType } from './issue.js'
import { generateP12Password, validateP12Password } from './p12-password.js'

/**
 * Certificate rotation. The lifecycle of a CA roll:
 *  1. `certs rotate --ca`: a new CA replaces ca.crt/ca.key; ca-bundle.crt holds the new CA and the old
 *     one(s); server and client leaves are re-issued from the new CA. Peers that still present a leaf of
 *     the old CA (client certificates handed out earlier) verify against ca-bundle.crt, so servers
 *     should trust the bundle during the overlap, and clients can be given the bundle ahead of time.
 *  2. Plain `certs rotate` (re-issue leaves from the current CA) leaves the bundle as it is.
 *  3. `certs rotate --finish`, once every old leaf is replaced: ca-bundle.crt is rewritten to hold the
 *     current CA alone, so the old CA is trusted no more (the file stays for configs that name it).
 */
export interface RotateOptions {
  ca?: boolean
  finish?: boolean
  /** Password for the new client.p12; generated (and returned once) when absent. */
  p12Password?: string
}

export interface RotateResult extends FileReport {
  /** What happened: leaves re-issued, CA rolled (with leaves), or the old CA dropped from the bundle. */
  action: 'leaves' | 'ca' | 'finish'
  /** Subjects of the CAs trusted afterwards (ca.crt first, then any still in ca-bundle.crt). */
  trusted: string[]
  clientP12Password?: string
}

function subjectOf(stored: StoredCertificate): string {
  return stored.certificate.subject.split('\n').join(', ')
}

function commonNameOf(stored: StoredCertificate | undefined): string | undefined {
  return stored ? /(?:^|\n)CN=([^\n]*)/.exec(stored.certificate.subject)?.[1] : undefined
}

/** New server and client leaves that keep the names of the current ones. */
async function planLeaves(
  home: HelixHome,
  config: HelixConfig,
  authority: Authority,
  p12Password: string,
): Promise<Issuance> {
  const server = await readCertificate(home, CERT_FILES.serverCert)
  const client = await readCertificate(home, CERT_FILES.clientCert)
  const keyType = leafKeyType(config, authority)
  const serverPlan = await planServer(home, authority, {
    keyType,
    commonName: commonNameOf(server) ?? config.domain,
    sans: serverSubjectAltNames(config, [], server ? subjectAltNamesOf(server.pem) : []),
    days: config.tls.server_days,
  })
  const clientPlan = await planClient(home, authority, {
    keyType,
    commonName: commonNameOf(client) ?? DEFAULT_CLIENT_NAME,
    days: config.tls.client_days,
    p12Password,
  })
  return mergeIssuances(serverPlan, clientPlan)
}

async function finishRoll(home: HelixHome): Promise<RotateResult> {
  const ca = await requireCaCertificate(home)
  const bundle = await readCertificateBundle(home, CERT_FILES.caBundle)
  if (bundle.length === 0) return { action: 'finish', created: [], kept: [], trusted: [subjectOf(ca)] }
  const plan = planBundle(home, [ca.pem])
  await commitFiles(plan.files)
  return { action: 'finish', created: issuedNames(plan), kept: [], trusted: [subjectOf(ca)] }
}

/** `helix certs rotate [--ca | --finish]` (see the lifecycle above). Everything is one atomic commit. */
export async function rotateCertificates(
  home: HelixHome,
  config: HelixConfig,
  options: RotateOptions = {},
): Promise<RotateResult> {
  if (options.finish) return finishRoll(home)
  const generated = options.p12Password === undefined ? generateP12Password() : undefined
  const p12Password = generated ?? validateP12Password(options.p12Password!)
  const secret = generated ? { clientP12Password: generated } : {}

  if (!options.ca) {
    const authority = await loadAuthority(home)
    const plan = await planLeaves(home, config, authority, p12Password)
    await commitFiles(plan.files)
    const ca = (await readCertificate(home, CERT_FILES.caCert))!
    const bundle = await readCertificateBundle(home, CERT_FILES.caBundle)
    const others = bundle.filter((b) => !b.certificate.raw.equals(ca.certificate.raw))
    return {
      action: 'leaves',
      created: issuedNames(plan),
      kept: [],
      trusted: [ca, ...others].map(subjectOf),
      ...secret,
    }
  }

  const oldCa = await requireCaCertificate(home)
  const keyType = config.tls.key_type ?? keyTypeOf(oldCa.certificate.publicKey) ?? 'ecdsa'
  const caPlan = await planAuthority(home, keyType, config.tls.ca_years)
  // Keep every older CA still in the bundle (a second roll before --finish) while it is valid.
  const now = Date.now()
  const previous = [oldCa, ...(await readCertificateBundle(home, CERT_FILES.caBundle))].filter(
    (c, i, all) =>
      all.findIndex((o) => o.certificate.raw.equals(c.certificate.raw)) === i &&
      new Date(c.certificate.validTo).getTime() > now,
  )
  const newCaPem = caPlan.pem
  const bundle = planBundle(home, [newCaPem, ...previous.map((c) => c.pem)])
  const leaves = await planLeaves(home, config, caPlan.authority, p12Password)
  const plan = mergeIssuances(caPlan, bundle, leaves)
  await commitFiles(plan.files)
  const trusted = [caPlan.authority.certificate.subject, ...previous.map(subjectOf)]
  return { action: 'ca', created: issuedNames(plan), kept: [], trusted, ...secret }
}
