import { Flags } from '@oclif/core'
import { cliOutbox } from '../../cli/admin.js'
import { renderOutbox } from '../../cli/output/identity.js'
import type { OutboxRow } from '../../core/identity/mail/outbox-mailer.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class UsersOutbox extends HelixCommand<OutboxRow[]> {
  static summary =
    'Show mail kept in the outbox (verification and reset mails, when no SMTP server is configured).'
  static examples = ['<%= config.bin %> users outbox --to ada@example.com']
  static flags = {
    to: Flags.string({ description: 'Only mail to this address.' }),
    limit: Flags.integer({ description: 'At most this many messages, newest first.', default: 20, min: 1 }),
  }

  async run(): Promise<OutboxRow[]> {
    const { flags } = await this.parse(UsersOutbox)
    const rows = await cliOutbox(this.home, await this.config_(), {
      ...(flags.to ? { to: flags.to } : {}),
      limit: flags.limit,
    })
    this.log(renderOutbox(rows))
    return rows
  }
}
