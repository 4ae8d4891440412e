import { Args } from '@oclif/core'
import { cliRevokeKey } from '../../cli/admin.js'
import type { ApiKeyInfo } from '../../core/identity/api-keys.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class ApikeysRevoke extends HelixCommand<ApiKeyInfo> {
  static summary = 'Revoke a key at once, on every daemon sharing the database.'
  static examples = ['<%= config.bin %> apikeys revoke 3f0c…']
  static args = { id: Args.string({ description: 'Key id (see `helix apikeys list`).', required: true }) }

  async run(): Promise<ApiKeyInfo> {
    const { args } = await this.parse(ApikeysRevoke)
    const key = await cliRevokeKey(this.home, await this.config_(), args.id)
    this.log(`Revoked ${key.name} (${key.prefix}…${key.last4}).`)
    return key
  }
}
