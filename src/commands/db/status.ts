import { renderTable } from '../../cli/output/table.js'
import { databaseStatus, type StatusResult } from '../../provision/postgres/database.js'
import { HelixCommand } from '../../shared/base-command.js'

function megabytes(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}

export default class DbStatus extends HelixCommand<StatusResult> {
  static summary = 'Show whether the database runs, where, how big it is and its migration state.'
  static examples = ['<%= config.bin %> db status', '<%= config.bin %> db status --json']

  async run(): Promise<StatusResult> {
    await this.parse(DbStatus)
    const s = await databaseStatus(this.home, await this.config_())
    const rows: (string | number)[][] = [
      ['mode', s.mode],
      ['state', s.running ? (s.reachable ? 'running' : 'running, not answering') : 'stopped'],
    ]
    if (s.url) rows.push(['url', s.url])
    if (s.port) rows.push(['port', s.port])
    if (s.pid) rows.push(['pid', s.pid])
    if (s.dataDir) rows.push(['data', `${s.dataDir} (${megabytes(s.dataSizeBytes ?? 0)})`])
    if (s.relocatedBecause) rows.push(['why there', `outside the helix directory: ${s.relocatedBecause}`])
    if (s.binDir) rows.push(['binaries', s.binDir])
    if (s.serverVersion) rows.push(['server', `PostgreSQL ${s.serverVersion}`])
    if (s.migrations) {
      rows.push(['schema', s.migrations.schemaVersion ?? '(empty)'])
      rows.push(['applied', s.migrations.applied.length])
      rows.push(['pending', s.migrations.pending.join(', ') || 'none'])
      if (s.migrations.drift.length) rows.push(['drift', s.migrations.drift.join(', ')])
      if (s.migrations.missing.length) rows.push(['missing', s.migrations.missing.join(', ')])
    }
    if (s.error) rows.push(['error', s.error])
    this.log(renderTable(['', ''], rows).split('\n').slice(1).join('\n'))
    return s
  }
}
