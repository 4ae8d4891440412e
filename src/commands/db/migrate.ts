import { Flags } from '@oclif/core'
import { HelixCommand } from '../../shared/base-command.js'
import { runMigrations } from '../../state/db/connect.js'
import type { MigrateResult } from '../../state/db/migrator.js'

export default class DbMigrate extends HelixCommand<MigrateResult> {
  static summary = 'Apply pending migrations, each in its own transaction; safe to run concurrently.'
  static description =
    'Refuses (exit 1, MIGRATION_DRIFT) when an applied migration file was edited afterwards. Concurrent runs are serialised by a table lock taken inside each migration transaction, which also holds through a transaction-mode pooler.'
  static examples = ['<%= config.bin %> db migrate', '<%= config.bin %> db migrate --dry-run --json']
  static flags = {
    'dry-run': Flags.boolean({
      description: 'List what would be applied without applying it.',
      default: false,
    }),
  }

  async run(): Promise<MigrateResult> {
    const { flags } = await this.parse(DbMigrate)
    const result = await runMigrations(this.home, await this.config_(), flags['dry-run'])
    const verb = result.dryRun ? 'Would apply' : 'Applied'
    if (result.applied.length === 0)
      this.log(`Nothing to apply: ${result.alreadyApplied.length} migration(s) already applied.`)
    else
      this.log(
        `${verb} ${result.applied.length} migration(s):\n${result.applied.map((m) => `  ${m}`).join('\n')}`,
      )
    return result
  }
}
