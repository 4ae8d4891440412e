import { UserError } from '../../shared/errors.js'
import type { AuditRow } from '../../state/db/repositories/audit.js'
import * as repos from '../../state/db/repositories/index.js'
import { isUuid } from '../../state/db/repositories/uuid.js'
import type { IdentityDeps } from '../identity/identity-deps.js'

export interface AuditQuery {
  /** e.g. "apikey." for every key event, "user." for accounts. */
  actionPrefix?: string
  since?: Date
  actorUserId?: string
  /** 1 to MAX_AUDIT_ENTRIES; DEFAULT_AUDIT_ENTRIES when absent. */
  limit?: number
}

export const DEFAULT_AUDIT_ENTRIES = 100
export const MAX_AUDIT_ENTRIES = 1000

/** The newest audit entries first, filtered; the same rows `helix audit` reads. */
export async function recentAuditEntries(
  deps: Pick<IdentityDeps, 'db'>,
  query: AuditQuery = {},
): Promise<AuditRow[]> {
  const limit = query.limit ?? DEFAULT_AUDIT_ENTRIES
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_AUDIT_ENTRIES) {
    throw new UserError('INVALID_INPUT', `limit must be 1 to ${MAX_AUDIT_ENTRIES}, got ${limit}.`)
  }
  if (query.actorUserId !== undefined && !isUuid(query.actorUserId)) {
    throw new UserError('INVALID_INPUT', `actor_user_id '${query.actorUserId}' is not a user id (a UUID).`)
  }
  return repos.audit.listAudit(deps.db, {
    limit,
    ...(query.since ? { since: query.since } : {}),
    ...(query.actorUserId ? { actorUserId: query.actorUserId } : {}),
    ...(query.actionPrefix ? { actionPrefix: query.actionPrefix } : {}),
  })
}
