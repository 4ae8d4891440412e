import { Flags } from '@oclif/core'
import { type BackupResult, backupDatabase } from '../../provision/postgres/backup.js'
import { HelixCommand } from '../../shared/base-command.js'
import { withDatabase } from '../../state/db/connect.js'

export default class DbBackup extends HelixCommand<BackupResult> {
  static summary = 'Write a consistent logical backup of the helix database to a file (no pg_dump needed).'
  static description =
    'The file holds every helix table (one snapshot), the applied migrations and a manifest with row counts and SHA-256 checksums per table and for the whole file. It is written 0600 (it contains password and token hashes).'
  static examples = ['<%= config.bin %> db backup --out helix-$(date +%F).backup']
  static flags = {
    out: Flags.string({ char: 'o', description: 'File to write (must not exist).', required: true }),
  }

  async run(): Promise<BackupResult> {
    const { flags } = await this.parse(DbBackup)
    const result = await withDatabase(this.home, await this.config_(), (db) => backupDatabase(db, flags.out))
    const rows = result.tables.reduce((n, t) => n + t.rows, 0)
    this.log(
      `Backup written to ${result.file}: ${result.tables.length} tables, ${rows} rows, schema ${result.schemaVersion ?? '(empty)'}.\nsha256 ${result.sha256}`,
    )
    return result
  }
}
