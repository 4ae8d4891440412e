import { Flags } from '@oclif/core'
import { cliAuditVerify } from '../../cli/admin.js'
import type { AuditChainReport } from '../../core/identity/audit-chain.js'
import { HelixCommand } from '../../shared/base-command.js'
import { Failure } from '../../shared/errors.js'

export default class AuditVerify extends HelixCommand<AuditChainReport> {
  static summary = 'Check that no audit entry was changed, removed or slipped in (the hash chain).'
  static description =
    'Every audit entry carries a SHA-256 hash over the entry before it and its own content; the database refuses UPDATE, DELETE and TRUNCATE on the log except GDPR erasure of who acted and retention of the oldest entries, which both keep the chain verifiable. This command recomputes every hash and names the first entry that does not verify (exit 1). Keep the printed head hash somewhere else (a ticket, a log shipper): --expect-head then also proves that no one rewrote the whole chain since.'
  static examples = [
    '<%= config.bin %> audit verify',
    '<%= config.bin %> audit verify --json',
    '<%= config.bin %> audit verify --expect-head 41:9f2c…',
  ]
  static flags = {
    'expect-head': Flags.string({
      description:
        'A head recorded earlier, as SEQ:HASH: the chain must still contain that entry with that hash.',
    }),
  }

  async run(): Promise<AuditChainReport> {
    const { flags } = await this.parse(AuditVerify)
    const report = await cliAuditVerify(this.home, await this.config_(), flags['expect-head'])
    if (!report.ok) {
      throw new Failure('AUDIT_CHAIN_BROKEN', `The audit log does not verify: ${report.broken?.problem}.`, {
        hint: 'Compare with a backup (helix db backup files hold the chain) and find who had write access to the database.',
        details: { report },
      })
    }
    this.log(
      report.head
        ? `audit log intact: ${report.entries} entries from position ${BigInt(report.start.seq) + 1n} to ${report.head.seq}; head ${report.head.seq}:${report.head.hash} (${report.head.at})`
        : `audit log intact: no entries${report.start.seq === '0' ? '' : ` after position ${report.start.seq} (retention)`}`,
    )
    return report
  }
}
