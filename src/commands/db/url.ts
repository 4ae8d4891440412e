import { Flags } from '@oclif/core'
import { databaseUrl, type UrlResult } from '../../provision/postgres/database.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class DbUrl extends HelixCommand<UrlResult> {
  static summary = 'Print the database connection URL (embedded or external).'
  static description =
    'Prints the full URL, password included, for tools such as psql: `psql "$(helix db url)"`. Use --redact to show it safely.'
  static examples = ['psql "$(<%= config.bin %> db url)" -c "select 1"', '<%= config.bin %> db url --redact']
  static flags = {
    redact: Flags.boolean({ description: 'Replace the password with *****.', default: false }),
  }

  async run(): Promise<UrlResult> {
    const { flags } = await this.parse(DbUrl)
    const result = await databaseUrl(this.home, await this.config_(), flags.redact)
    this.log(result.url)
    return result
  }
}
