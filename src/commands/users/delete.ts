import { Args, Flags } from '@oclif/core'
import { cliDeleteUser } from '../../cli/admin.js'
import type { ErasureReport } from '../../core/identity/accounts.js'
import { HelixCommand } from '../../shared/base-command.js'
import { UserError } from '../../shared/errors.js'

export default class UsersDelete extends HelixCommand<ErasureReport> {
  static summary =
    'Delete a user and erase their personal data (GDPR), keeping only anonymous usage counters.'
  static examples = ['<%= config.bin %> users delete ada@example.com --yes']
  static args = { user: Args.string({ description: 'E-mail or id of the user.', required: true }) }
  static flags = {
    yes: Flags.boolean({ description: 'Confirm the erasure (it cannot be undone).', default: false }),
  }

  async run(): Promise<ErasureReport> {
    const { args, flags } = await this.parse(UsersDelete)
    if (!flags.yes) {
      throw new UserError('CONFIRMATION_REQUIRED', `Deleting ${args.user} erases their data for good.`, {
        hint: 'Run again with --yes to confirm.',
      })
    }
    const report = await cliDeleteUser(this.home, await this.config_(), args.user)
    this.log(
      `Erased ${args.user}: ${report.request_log_rows} request records deleted, ${report.audit_entries_anonymised} audit entries anonymised, ${report.api_keys_detached} keys revoked.`,
    )
    return report
  }
}
