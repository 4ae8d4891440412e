import { Flags } from '@oclif/core'
import { logFormatFlag } from '../cli/daemon-flags.js'
import { type UpReady, type UpResult, up } from '../ops/up.js'
import { HelixCommand } from '../shared/base-command.js'
import type { LogFormat } from '../shared/config-schema.js'

export default class Up extends HelixCommand<UpResult> {
  static summary =
    'Start the whole service in one command: init, database, migrations, demo model, admin key, daemon.'
  static description =
    'On a fresh clone (after npm ci) this needs no questions: it creates the helix directory with defaults if it is missing, starts the embedded PostgreSQL (or uses DATABASE_URL), applies migrations, puts the PP-OCR text-direction classifier in an empty model repository, creates an admin API key the first time (shown once), and serves until Ctrl-C, which stops the daemon and the database it started. A second `helix up` reuses everything. Logs go to stderr: on a terminal short human lines, and only warnings and errors once the summary is printed; JSON lines otherwise (--log-format).'
  static examples = [
    '<%= config.bin %> up',
    '<%= config.bin %> up --port 9000 --tls',
    '<%= config.bin %> up --dir /srv/helix',
  ]

  static flags = {
    host: Flags.string({ description: 'Address to listen on (default 127.0.0.1).' }),
    port: Flags.integer({ description: 'Port to listen on (default 8080).', min: 0, max: 65535 }),
    tls: Flags.boolean({ description: 'Serve HTTPS with the generated server certificate.', allowNo: true }),
    'log-format': logFormatFlag,
    grpc: Flags.boolean({ description: 'Serve gRPC next to REST (default on).', allowNo: true }),
    'grpc-port': Flags.integer({
      description: 'Port of the gRPC face (default: the REST port + 1, i.e. 8081).',
      min: 0,
      max: 65535,
    }),
  }

  async run(): Promise<UpResult> {
    const { flags } = await this.parse(Up)
    const result = await up(
      this.home,
      {
        host: flags.host,
        port: flags.port,
        tls: flags.tls,
        logFormat: flags['log-format'] as LogFormat | undefined,
        grpc: flags.grpc,
        grpcPort: flags['grpc-port'],
      },
      (ready) => {
        if (this.jsonEnabled()) process.stderr.write(`${JSON.stringify({ ready })}\n`)
        else this.log(renderReady(ready))
      },
    )
    this.log(
      `\nStopped (${result.signal}).${result.databaseStarted ? ' The embedded database was stopped too.' : ''}`,
    )
    return result
  }
}

function renderReady(ready: UpReady): string {
  const lines = [`Helix is up at ${ready.url}${ready.grpc ? ` (gRPC on ${ready.grpc})` : ''}`]
  if (ready.initialised) lines.push('  created the helix directory with defaults')
  if (ready.migrationsApplied.length)
    lines.push(`  applied ${ready.migrationsApplied.length} database migration(s)`)
  if (ready.modelAdded)
    lines.push(`  added the demo model '${ready.modelAdded}' (PP-OCR text-direction classifier)`)
  if (ready.adminKey) {
    lines.push(
      '',
      `Admin API key (shown once, stored only as a hash): ${ready.adminKey}`,
      `  Keep it safe. List keys with \`helix apikeys list\`, rotate this one with \`helix apikeys rotate ${ready.adminKeyId}\`.`,
    )
  } else {
    lines.push(
      '',
      `Using the existing admin API key (id ${ready.adminKeyId}); it is not shown again. Rotate it with \`helix apikeys rotate ${ready.adminKeyId}\`.`,
    )
  }
  lines.push('', 'Try it:', `  ${ready.curl}`, '', 'Press Ctrl-C to stop.')
  return lines.join('\n')
}
