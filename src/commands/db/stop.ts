import { type StopResult, stopDatabase } from '../../provision/postgres/database.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class DbStop extends HelixCommand<StopResult> {
  static summary = 'Stop the embedded PostgreSQL cleanly (fast shutdown; no process is left behind).'
  static examples = ['<%= config.bin %> db stop']

  async run(): Promise<StopResult> {
    await this.parse(DbStop)
    const result = await stopDatabase(this.home, await this.config_())
    if (result.mode === 'external')
      this.log(`The database is external (${result.url}); helix does not stop it.`)
    else this.log(result.stopped ? `PostgreSQL stopped (pid ${result.pid}).` : 'PostgreSQL was not running.')
    return result
  }
}
