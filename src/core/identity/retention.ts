import * as repos from '../../state/db/repositories/index.js'
import type { IdentityDeps } from './identity-deps.js'

const DAY_MS = 86_400_000

export interface PurgeReport {
  audit_entries: number
  request_log_rows: number
  revocations: number
  email_tokens: number
  outbox_mails: number
}

/**
 * Retention (issue 6 §4): drops audit entries and request logs older than their configured periods,
 * access-token revocations past the token's expiry, spent or expired e-mail tokens, and outbox mail
 * older than the longest e-mail token lifetime (its links no longer work).
 */
export async function purgeExpired(
  deps: Pick<IdentityDeps, 'db' | 'config'>,
  now = new Date(),
): Promise<PurgeReport> {
  const { auth } = deps.config
  const mailLifetimeMs = Math.max(auth.verify_email_ttl_s, auth.reset_password_ttl_s) * 1000
  const outbox = await deps.db.query('DELETE FROM mail_outbox WHERE created_at < $1', [
    new Date(now.getTime() - mailLifetimeMs),
  ])
  return {
    audit_entries: await repos.audit.deleteAuditBefore(
      deps.db,
      new Date(now.getTime() - auth.audit_retention_days * DAY_MS),
    ),
    request_log_rows: await repos.requestLog.deleteRequestsBefore(
      deps.db,
      new Date(now.getTime() - auth.request_log_retention_days * DAY_MS),
    ),
    revocations: await repos.revokedTokens.purgeExpiredRevocations(deps.db),
    email_tokens: await repos.emailTokens.deleteExpiredEmailTokens(deps.db, now),
    outbox_mails: outbox.rowCount ?? 0,
  }
}
