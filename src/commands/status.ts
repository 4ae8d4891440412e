import { Flags } from '@oclif/core'
import { renderStatus } from '../cli/output/status.js'
import { collectStatus, type StatusReport } from '../ops/status.js'
import { HelixCommand } from '../shared/base-command.js'

export default class Status extends HelixCommand<StatusReport> {
  static summary =
    'Show what runs and how healthy it is: daemon (REST and gRPC), models, database, certificates, JWT key, GPUs.'
  static description =
    'Asks the running daemon (--url, else the one recorded in data/daemon.json when it started, else helix.yaml server.host/port) for its version, uptime, readiness and models (versions, state, execution provider, queue depth), checks its gRPC face with a grpc.health.v1 call (over TLS and mTLS with the helix certificates when the daemon serves them), and reports the database (embedded or external, reachable, migrations), certificate expiry, JWT key age and GPUs. The repository index needs an admin key when auth is on: --key or HELIX_API_KEY.'
  static examples = ['<%= config.bin %> status', '<%= config.bin %> status --json --key "$HELIX_API_KEY"']

  static flags = {
    url: Flags.string({
      description: 'Daemon URL (default: the running daemon recorded in data/daemon.json, else helix.yaml).',
    }),
    key: Flags.string({ description: 'API key for the daemon’s admin routes.', env: 'HELIX_API_KEY' }),
  }

  async run(): Promise<StatusReport> {
    const { flags } = await this.parse(Status)
    const config = await this.config_()
    const report = await collectStatus({ home: this.home, config, url: flags.url, apiKey: flags.key })
    this.log(renderStatus(report))
    return report
  }
}
