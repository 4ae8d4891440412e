import type { PublicUser } from '../../core/identity/accounts.js'
import type { ApiKeyInfo, CreatedKey } from '../../core/identity/api-keys.js'
import type { OutboxRow } from '../../core/identity/mail/outbox-mailer.js'
import type { AuditEntry } from '../admin.js'
import { renderTable } from './table.js'

/** Human output of the users, apikeys and audit commands (--json prints the typed results instead). */

export function renderUsers(users: PublicUser[]): string {
  if (users.length === 0) return 'No users yet: create one with `helix users create --email you@example.com`.'
  return renderTable(
    ['ID', 'E-MAIL', 'ROLE', 'VERIFIED', 'STATE', 'CREATED'],
    users.map((u) => [
      u.id,
      u.email,
      u.role,
      u.email_verified ? 'yes' : 'no',
      u.disabled ? 'disabled' : 'active',
      u.created_at.slice(0, 10),
    ]),
  )
}

export function keyState(k: ApiKeyInfo, now = Date.now()): string {
  if (k.revoked_at) return 'revoked'
  if (k.expires_at && Date.parse(k.expires_at) <= now) return 'expired'
  if (k.grace_until && Date.parse(k.grace_until) > now) return 'rotating'
  return 'active'
}

export function renderKeys(list: ApiKeyInfo[]): string {
  if (list.length === 0)
    return 'No API keys: create one with `helix apikeys create --name NAME --scopes infer`.'
  return renderTable(
    ['ID', 'NAME', 'KEY', 'SCOPES', 'STATE', 'LAST USED'],
    list.map((k) => [
      k.id,
      k.name,
      `${k.prefix}…${k.last4}`,
      k.scopes.join(' '),
      keyState(k),
      k.last_used_at?.slice(0, 19) ?? 'never',
    ]),
  )
}

/** The only time a secret is printed: say so, and say what to do with it. */
export function renderCreatedKey(k: CreatedKey, verb: 'Created' | 'Rotated'): string {
  const lines = [
    `${verb} API key ${k.name} (${k.id}), scopes: ${k.scopes.join(' ')}.`,
    '',
    `  ${k.key}`,
    '',
    'This is the only time the key is shown: store it in a secret manager now.',
  ]
  if (verb === 'Rotated' && k.grace_until)
    lines.push(`The previous secret keeps working until ${k.grace_until}.`)
  return lines.join('\n')
}

export function renderOutbox(rows: OutboxRow[]): string {
  if (rows.length === 0) return 'The outbox is empty.'
  return rows
    .map((r) => `--- ${r.created_at.toISOString()}  to ${r.recipient}\nSubject: ${r.subject}\n\n${r.body}`)
    .join('\n')
}

export function renderAudit(entries: AuditEntry[]): string {
  if (entries.length === 0) return 'No audit entries in that period.'
  return renderTable(
    ['AT', 'ACTION', 'ACTOR', 'TARGET', 'FROM'],
    entries.map((e) => [e.at.slice(0, 19), e.action, e.actor ?? '', e.target ?? '', e.ip ?? '']),
  )
}
