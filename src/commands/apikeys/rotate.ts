import { Args, Flags } from '@oclif/core'
import { cliRotateKey } from '../../cli/admin.js'
import { renderCreatedKey } from '../../cli/output/identity.js'
import type { CreatedKey } from '../../core/identity/api-keys.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class ApikeysRotate extends HelixCommand<CreatedKey> {
  static summary = 'Give a key a new secret; the old one keeps working for a grace period (default 24h).'
  static examples = [
    '<%= config.bin %> apikeys rotate 3f0c…',
    '<%= config.bin %> apikeys rotate 3f0c… --grace 1h --json',
  ]
  static args = { id: Args.string({ description: 'Key id (see `helix apikeys list`).', required: true }) }
  static flags = {
    grace: Flags.string({
      description: 'How long the old secret keeps working: 0s, 15m, 24h, 7d (default auth.api_key_grace_s).',
    }),
  }

  async run(): Promise<CreatedKey> {
    const { args, flags } = await this.parse(ApikeysRotate)
    const rotated = await cliRotateKey(
      this.home,
      await this.config_(),
      args.id,
      flags.grace ? { grace: flags.grace } : {},
    )
    this.log(renderCreatedKey(rotated, 'Rotated'))
    return rotated
  }
}
