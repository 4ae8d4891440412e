import { Args, Flags } from '@oclif/core'
import { cliSetUserDisabled } from '../../cli/admin.js'
import type { PublicUser } from '../../core/identity/accounts.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class UsersDisable extends HelixCommand<PublicUser> {
  static summary = 'Disable a user: sign-in is refused and every session and API key of theirs stops at once.'
  static examples = [
    '<%= config.bin %> users disable ada@example.com',
    '<%= config.bin %> users disable ada@example.com --enable',
  ]
  static args = { user: Args.string({ description: 'E-mail or id of the user.', required: true }) }
  static flags = {
    enable: Flags.boolean({
      description: 'Re-enable the user instead (revoked keys stay revoked).',
      default: false,
    }),
  }

  async run(): Promise<PublicUser> {
    const { args, flags } = await this.parse(UsersDisable)
    const user = await cliSetUserDisabled(this.home, await this.config_(), args.user, !flags.enable)
    this.log(
      `${user.email} is now ${user.disabled ? 'disabled: its sessions and API keys were revoked' : 'enabled'}.`,
    )
    return user
  }
}
