import type { HelixConfig } from '../../../shared/config.js'
import type { Queryable } from '../../../state/db/pool.js'
import type { Mailer } from './mailer.js'
import { OutboxMailer } from './outbox-mailer.js'
import { SmtpMailer } from './smtp-mailer.js'

export * from './auth-mail.js'
export * from './mailer.js'
export * from './outbox-mailer.js'
export * from './smtp-mailer.js'

/** SMTP when mail.smtp_url is set, else the outbox table. */
export function createMailer(config: HelixConfig, db: Queryable): Mailer {
  return config.mail.smtp_url ? new SmtpMailer(config.mail.smtp_url, config.mail.from) : new OutboxMailer(db)
}
