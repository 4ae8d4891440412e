import type { Queryable } from '../../../state/db/pool.js'
import type { Mailer, MailMessage } from './mailer.js'

/** A row of `mail_outbox`: mail kept in the database when no SMTP server is configured. */
export interface OutboxRow {
  id: string
  created_at: Date
  recipient: string
  subject: string
  body: string
}

/**
 * Keeps mail in the `mail_outbox` table (`helix users outbox` shows it) so a fresh install can verify
 * e-mails and reset passwords before an SMTP server is set up.
 */
export class OutboxMailer implements Mailer {
  constructor(private readonly db: Queryable) {}

  async send(message: MailMessage): Promise<void> {
    await this.db.query('INSERT INTO mail_outbox (recipient, subject, body) VALUES ($1, $2, $3)', [
      message.to,
      message.subject,
      message.text,
    ])
  }

  async close(): Promise<void> {}
}

/** Newest first; `to` filters by recipient (case-insensitive). */
export async function listOutbox(
  db: Queryable,
  options: { to?: string; limit?: number } = {},
): Promise<OutboxRow[]> {
  const { rows } = await db.query<OutboxRow>(
    `SELECT id::text AS id, created_at, recipient, subject, body FROM mail_outbox
      WHERE ($1::text IS NULL OR lower(recipient) = lower($1)) ORDER BY created_at DESC, id DESC LIMIT $2`,
    [options.to ?? null, options.limit ?? 50],
  )
  return rows
}

/** GDPR erasure: a deleted user's mail goes too. */
export async function deleteOutboxFor(db: Queryable, recipient: string): Promise<number> {
  const { rowCount } = await db.query('DELETE FROM mail_outbox WHERE lower(recipient) = lower($1)', [
    recipient,
  ])
  return rowCount ?? 0
}
