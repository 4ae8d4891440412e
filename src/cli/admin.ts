import * as accounts from '../core/identity/accounts.js'
import * as keys from '../core/identity/api-keys.js'
import { type AuditChainReport, verifyAuditChain } from '../core/identity/audit-chain.js'
import { parseDuration, parseWhen } from '../core/identity/duration.js'
import type { IdentityDeps } from '../core/identity/identity-deps.js'
import { createMailer } from '../core/identity/mail/index.js'
import { listOutbox, type OutboxRow } from '../core/identity/mail/outbox-mailer.js'
import type { HelixConfig } from '../shared/config.js'
import { UserError } from '../shared/errors.js'
import type { HelixHome } from '../shared/home.js'
import { withDatabase } from '../state/db/connect.js'
import { migrationState } from '../state/db/migrator.js'
import type { DatabasePool } from '../state/db/pool.js'
import * as repos from '../state/db/repositories/index.js'

/**
 * The configured database once its schema is current: a database that `helix db start` created but
 * nothing migrated yet (or one a newer helix release has migrations for) gets a clear error instead of
 * a missing table.
 */
async function withSchema<T>(
  home: HelixHome,
  config: HelixConfig,
  fn: (db: DatabasePool) => Promise<T>,
): Promise<T> {
  return withDatabase(home, config, async (db) => {
    const { pending } = await migrationState(db)
    if (pending.length > 0) {
      throw new UserError(
        'DB_NOT_MIGRATED',
        `The database has ${pending.length} pending migration(s): ${pending.join(', ')}.`,
        {
          hint: 'Run `helix db migrate` (helix serve and helix up apply them when they start).',
        },
      )
    }
    return fn(db)
  })
}

/**
 * The services behind `helix users`, `helix apikeys` and `helix audit`: each opens the configured
 * database, does one thing as the CLI actor (full rights: whoever runs it can read the database), and
 * closes it again.
 */
async function withDeps<T>(
  home: HelixHome,
  config: HelixConfig,
  fn: (deps: IdentityDeps) => Promise<T>,
): Promise<T> {
  return withSchema(home, config, async (db) => {
    const mailer = createMailer(config, db)
    try {
      return await fn({ db, config, mailer })
    } finally {
      await mailer.close()
    }
  })
}

const CLI = { actor: 'cli', actorUserId: null }

export async function cliCreateUser(
  home: HelixHome,
  config: HelixConfig,
  input: { email: string; password?: string; displayName?: string; admin?: boolean },
): Promise<{ user: accounts.PublicUser; advice?: string }> {
  return withDeps(home, config, (deps) =>
    accounts.createAccount(
      deps,
      {
        email: input.email,
        password: input.password,
        displayName: input.displayName ?? null,
        role: input.admin ? 'admin' : 'user',
      },
      CLI,
    ),
  )
}

export async function cliListUsers(
  home: HelixHome,
  config: HelixConfig,
  options: { limit?: number } = {},
): Promise<accounts.PublicUser[]> {
  return withDeps(home, config, (deps) => accounts.listAccounts(deps, { limit: options.limit ?? 1000 }))
}

export async function cliSetUserDisabled(
  home: HelixHome,
  config: HelixConfig,
  user: string,
  disabled: boolean,
): Promise<accounts.PublicUser> {
  return withDeps(home, config, (deps) => accounts.setAccountDisabled(deps, user, disabled, CLI))
}

export async function cliDeleteUser(
  home: HelixHome,
  config: HelixConfig,
  user: string,
): Promise<accounts.ErasureReport> {
  return withDeps(home, config, (deps) => accounts.eraseAccount(deps, user, CLI))
}

export async function cliOutbox(
  home: HelixHome,
  config: HelixConfig,
  options: { to?: string; limit?: number } = {},
): Promise<OutboxRow[]> {
  return withDatabase(home, config, (db) => listOutbox(db, options))
}

export interface CliKeyRequest {
  name: string
  scopes: string[]
  /** Owner by e-mail or id; none: a service key. */
  user?: string
  /** Expiry as a duration from now (30d) or an ISO date. */
  expires?: string
  rateLimitPerMin?: number
  quotaRequests?: number
  quotaItems?: number
  quotaPeriod?: 'day' | 'month'
}

export async function cliCreateKey(
  home: HelixHome,
  config: HelixConfig,
  request: CliKeyRequest,
): Promise<keys.CreatedKey> {
  const expiresAt = request.expires ? parseWhen(request.expires, 'future', 'expires') : null
  return withDeps(home, config, async (deps) => {
    const userId = request.user ? (await accounts.findAccount(deps, request.user)).id : null
    return keys.createKey(deps, keys.CLI_ACTOR, {
      name: request.name,
      scopes: request.scopes,
      userId,
      expiresAt,
      rateLimitPerMin: request.rateLimitPerMin ?? null,
      quotaRequests: request.quotaRequests ?? null,
      quotaItems: request.quotaItems ?? null,
      quotaPeriod: request.quotaPeriod ?? null,
    })
  })
}

export async function cliListKeys(
  home: HelixHome,
  config: HelixConfig,
  options: { user?: string; includeRevoked?: boolean } = {},
): Promise<keys.ApiKeyInfo[]> {
  return withDeps(home, config, async (deps) => {
    const userId = options.user ? (await accounts.findAccount(deps, options.user)).id : undefined
    return keys.listKeys(deps, keys.CLI_ACTOR, {
      ...(userId ? { userId } : {}),
      includeRevoked: options.includeRevoked ?? false,
    })
  })
}

export async function cliRotateKey(
  home: HelixHome,
  config: HelixConfig,
  id: string,
  options: { grace?: string } = {},
): Promise<keys.CreatedKey> {
  const graceSeconds =
    options.grace === undefined ? undefined : Math.round(parseDuration(options.grace, 'grace') / 1000)
  return withDeps(home, config, (deps) =>
    keys.rotateKey(deps, keys.CLI_ACTOR, id, graceSeconds === undefined ? {} : { graceSeconds }),
  )
}

export async function cliRevokeKey(
  home: HelixHome,
  config: HelixConfig,
  id: string,
): Promise<keys.ApiKeyInfo> {
  return withDeps(home, config, (deps) => keys.revokeKey(deps, keys.CLI_ACTOR, id))
}

export interface AuditEntry {
  id: string
  at: string
  actor: string | null
  action: string
  target: string | null
  ip: string | null
  details: Record<string, unknown>
}

/** `helix audit verify`: the audit log's hash chain, checked entry by entry. */
export async function cliAuditVerify(
  home: HelixHome,
  config: HelixConfig,
  expectHead?: string,
): Promise<AuditChainReport> {
  return withSchema(home, config, (db) => verifyAuditChain(db, expectHead))
}

export async function cliAudit(
  home: HelixHome,
  config: HelixConfig,
  options: { since?: string; action?: string; limit?: number } = {},
): Promise<AuditEntry[]> {
  const since = parseWhen(options.since ?? '24h', 'past', 'since')
  if (options.limit !== undefined && (!Number.isInteger(options.limit) || options.limit < 1)) {
    throw new UserError('INVALID_INPUT', '--limit must be a positive whole number.', {
      hint: 'For example --limit 100.',
    })
  }
  const rows = await withSchema(home, config, (db) =>
    repos.audit.listAudit(db, {
      since,
      ...(options.action ? { actionPrefix: options.action } : {}),
      limit: options.limit ?? 1000,
    }),
  )
  return rows.map((r) => ({
    id: r.id,
    at: r.at.toISOString(),
    actor: r.actor,
    action: r.action,
    target: r.target,
    ip: r.ip,
    details: r.details,
  }))
}
