import { Args } from '@oclif/core'
import { type RestoreResult, restoreDatabase } from '../../provision/postgres/restore.js'
import { HelixCommand } from '../../shared/base-command.js'
import { withDatabase } from '../../state/db/connect.js'

export default class DbRestore extends HelixCommand<RestoreResult> {
  static summary = 'Restore a backup into an empty database, all or nothing.'
  static description =
    'Verifies the whole file first (manifest, per-table and whole-file SHA-256); a truncated or corrupted backup is refused before anything is written. Then recreates the schema and rows in one transaction and checks the restored content against the backup before committing.'
  static examples = ['<%= config.bin %> db restore helix-2026-01-31.backup']
  static args = {
    file: Args.string({ description: 'Backup file written by `helix db backup`.', required: true }),
  }

  async run(): Promise<RestoreResult> {
    const { args } = await this.parse(DbRestore)
    const result = await withDatabase(this.home, await this.config_(), (db) => restoreDatabase(db, args.file))
    const rows = result.tables.reduce((n, t) => n + t.rows, 0)
    this.log(
      `Restored ${result.tables.length} tables, ${rows} rows and ${result.migrations} migration(s) from ${result.file}.`,
    )
    return result
  }
}
