import { Flags } from '@oclif/core'
import { type AuditEntry, cliAudit } from '../../cli/admin.js'
import { renderAudit } from '../../cli/output/identity.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class Audit extends HelixCommand<AuditEntry[]> {
  static summary = 'Show the audit log: sign-ins, refresh-token reuse, key and user changes, model loads.'
  static examples = [
    '<%= config.bin %> audit --since 1h --json',
    '<%= config.bin %> audit --since 7d --action apikey.',
  ]
  static flags = {
    since: Flags.string({ description: 'How far back: a duration (1h, 7d) or an ISO date.', default: '24h' }),
    action: Flags.string({ description: 'Only actions starting with this (e.g. auth., apikey.revoke).' }),
    limit: Flags.integer({ description: 'At most this many entries, newest first.', default: 1000, min: 1 }),
  }

  async run(): Promise<AuditEntry[]> {
    const { flags } = await this.parse(Audit)
    const entries = await cliAudit(this.home, await this.config_(), {
      since: flags.since,
      ...(flags.action ? { action: flags.action } : {}),
      limit: flags.limit,
    })
    this.log(renderAudit(entries))
    return entries
  }
}
