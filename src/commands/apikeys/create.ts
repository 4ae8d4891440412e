import { Flags } from '@oclif/core'
import { cliCreateKey } from '../../cli/admin.js'
import { renderCreatedKey } from '../../cli/output/identity.js'
import type { CreatedKey } from '../../core/identity/api-keys.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class ApikeysCreate extends HelixCommand<CreatedKey> {
  static summary = 'Create an API key; the secret is printed this once.'
  static examples = [
    '<%= config.bin %> apikeys create --name ci --scopes infer --json',
    '<%= config.bin %> apikeys create --name ocr --scopes infer:cls --user ada@example.com --rate-limit 600 --expires 90d',
  ]
  static flags = {
    name: Flags.string({ description: 'What the key is for.', required: true }),
    scopes: Flags.string({
      description:
        'Scopes: infer, infer:<model>, models:read, models:admin, monitor, metrics, admin (comma-separated or repeated).',
      required: true,
      multiple: true,
    }),
    user: Flags.string({ description: 'Owner (e-mail or id); without it a service key.' }),
    expires: Flags.string({ description: 'Expiry: a duration (90d) or an ISO date.' }),
    'rate-limit': Flags.integer({
      description: 'Requests per minute (default: rate_limit.per_key_per_min).',
      min: 1,
    }),
    'quota-requests': Flags.integer({ description: 'Requests per quota period.', min: 1 }),
    'quota-items': Flags.integer({ description: 'Items (batch rows) per quota period.', min: 1 }),
    'quota-period': Flags.string({ description: 'Quota period.', options: ['day', 'month'] }),
  }

  async run(): Promise<CreatedKey> {
    const { flags } = await this.parse(ApikeysCreate)
    const created = await cliCreateKey(this.home, await this.config_(), {
      name: flags.name,
      scopes: flags.scopes,
      ...(flags.user ? { user: flags.user } : {}),
      ...(flags.expires ? { expires: flags.expires } : {}),
      ...(flags['rate-limit'] ? { rateLimitPerMin: flags['rate-limit'] } : {}),
      ...(flags['quota-requests'] ? { quotaRequests: flags['quota-requests'] } : {}),
      ...(flags['quota-items'] ? { quotaItems: flags['quota-items'] } : {}),
      ...(flags['quota-period'] ? { quotaPeriod: flags['quota-period'] as 'day' | 'month' } : {}),
    })
    this.log(renderCreatedKey(created, 'Created'))
    return created
  }
}
