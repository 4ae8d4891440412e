import { Flags } from '@oclif/core'
import { cliListUsers } from '../../cli/admin.js'
import { renderUsers } from '../../cli/output/identity.js'
import type { PublicUser } from '../../core/identity/accounts.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class UsersList extends HelixCommand<PublicUser[]> {
  static summary = 'List user accounts.'
  static examples = ['<%= config.bin %> users list', '<%= config.bin %> users list --json']
  static flags = {
    limit: Flags.integer({ description: 'At most this many users.', default: 1000, min: 1 }),
  }

  async run(): Promise<PublicUser[]> {
    const { flags } = await this.parse(UsersList)
    const users = await cliListUsers(this.home, await this.config_(), { limit: flags.limit })
    this.log(renderUsers(users))
    return users
  }
}
