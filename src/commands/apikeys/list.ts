import { Flags } from '@oclif/core'
import { cliListKeys } from '../../cli/admin.js'
import { renderKeys } from '../../cli/output/identity.js'
import type { ApiKeyInfo } from '../../core/identity/api-keys.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class ApikeysList extends HelixCommand<ApiKeyInfo[]> {
  static summary = 'List API keys (prefix and last 4 characters only).'
  static examples = [
    '<%= config.bin %> apikeys list',
    '<%= config.bin %> apikeys list --user ada@example.com --all --json',
  ]
  static flags = {
    user: Flags.string({ description: 'Only keys of this user (e-mail or id).' }),
    all: Flags.boolean({ description: 'Include revoked keys.', default: false }),
  }

  async run(): Promise<ApiKeyInfo[]> {
    const { flags } = await this.parse(ApikeysList)
    const list = await cliListKeys(this.home, await this.config_(), {
      ...(flags.user ? { user: flags.user } : {}),
      includeRevoked: flags.all,
    })
    this.log(renderKeys(list))
    return list
  }
}
