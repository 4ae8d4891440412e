import { type StartResult, startDatabase } from '../../provision/postgres/database.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class DbStart extends HelixCommand<StartResult> {
  static summary =
    'Start the embedded PostgreSQL in the background (a no-op when it runs or the database is external).'
  static description =
    'On first start creates the cluster in <dir>/data/postgres, picks a free port and generates a password (stored 0600 in data/postgres.json). The server keeps running after the command exits; stop it with `helix db stop`. As root, the server runs as the OS user database.os_user (default helix-pg, created if missing).'
  static examples = ['<%= config.bin %> db start', '<%= config.bin %> db start --dir /srv/helix --json']

  async run(): Promise<StartResult> {
    await this.parse(DbStart)
    const result = await startDatabase(this.home, await this.config_())
    if (result.mode === 'external')
      this.log(`External database ${result.url} is reachable; nothing to start.`)
    else if (result.started)
      this.log(
        `PostgreSQL started on port ${result.port} (pid ${result.pid})${result.initialised ? ', new cluster created' : ''}.\n${result.url}`,
      )
    else this.log(`PostgreSQL is already running on port ${result.port} (pid ${result.pid}).`)
    return result
  }
}
