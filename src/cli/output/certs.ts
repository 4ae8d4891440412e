import type { CaResult } from '../../provision/certs/authority.js'
import type { IssueResult } from '../../provision/certs/issue.js'
import type { RotateResult } from '../../provision/certs/rotate.js'
import type { VerifyResult } from '../../provision/certs/verify.js'
import type { ListResult } from '../../state/certs/list.js'
import type { CertificateSummary } from '../../state/certs/summary.js'
import { renderFileReport, renderTable } from './table.js'

/** The one-time notice for a generated client.p12 password (secrets are printed once and never stored in clear). */
export function renderP12Password(password: string | undefined): string[] {
  if (!password) return []
  return [
    '',
    `client.p12 password: ${password}`,
    'Store it now: it is shown only this once and Helix does not keep it.',
    "Use it with: curl --cert-type P12 --cert 'certs/client.p12:<password>' --cacert certs/ca.crt https://…",
  ]
}

function describe(c: CertificateSummary): string {
  return `${c.subject} (${c.key}, until ${c.notAfter.slice(0, 10)}, ${c.daysLeft} days left)`
}

export function renderCaResult(result: CaResult): string {
  const lines = [renderFileReport(`Certificate authority: ${describe(result.ca)}`, result)]
  if (result.leavesNeedReissue) {
    lines.push(
      'The existing server and client certificates were signed by the old CA and no longer verify:',
      're-issue them with `helix certs issue server` and `helix certs issue client` (next time, `helix certs rotate --ca` rolls the CA with an overlap).',
    )
  }
  return lines.join('\n')
}

export function renderIssueResult(result: IssueResult): string {
  const c = result.certificate
  const lines = [renderFileReport(`Issued ${result.kind} certificate: ${describe(c)}`, result)]
  if (c.sans.length > 0) lines.push(`  SANs: ${c.sans.join(', ')}`)
  return [...lines, ...renderP12Password(result.clientP12Password)].join('\n')
}

export function renderRotateResult(result: RotateResult): string {
  const titles = {
    leaves: 'Re-issued the server and client certificates from the current CA.',
    ca: 'Rolled the CA and re-issued the leaves. certs/ca-bundle.crt trusts the new and the old CA until `helix certs rotate --finish`.',
    finish:
      result.created.length > 0
        ? 'Finished the CA roll: certs/ca-bundle.crt now trusts the current CA only.'
        : 'No CA roll in progress: nothing to finish.',
  }
  const lines = [renderFileReport(titles[result.action], result), `Trusted CAs: ${result.trusted.join('; ')}`]
  return [...lines, ...renderP12Password(result.clientP12Password)].join('\n')
}

export function renderCertificateList(result: ListResult): string {
  const rows = result.certificates.map((c) => [
    c.role,
    c.file,
    c.subject,
    c.sans.join(' ') || '-',
    c.notAfter.slice(0, 10),
    c.daysLeft,
    c.warning ? 'WARN' : '',
  ])
  return renderTable(['ROLE', 'FILE', 'SUBJECT', 'SANS', 'NOT AFTER', 'DAYS LEFT', ''], rows)
}

export function renderVerifyResult(result: VerifyResult): string {
  const rows = result.checks.map((c) => [c.ok ? 'ok' : 'FAIL', c.file, c.check, c.code ?? '', c.detail])
  const summary = result.ok ? `All certificates verify (host ${result.host}).` : 'Verification failed.'
  return `${renderTable(['', 'FILE', 'CHECK', 'CODE', 'DETAIL'], rows)}\n${summary}`
}
