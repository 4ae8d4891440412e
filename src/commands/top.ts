import { Flags } from '@oclif/core'
import { renderTop } from '../cli/output/top.js'
import type { StatsSnapshot } from '../grpc/monitoring-client.js'
import { watchDaemon } from '../ops/top.js'
import { HelixCommand } from '../shared/base-command.js'
import { UserError } from '../shared/errors.js'

/** Clears the terminal and puts the cursor home, so each frame replaces the last. */
const CLEAR = '\x1b[H\x1b[2J'

export default class Top extends HelixCommand<{ snapshots: StatsSnapshot[] }> {
  static summary = 'Watch the running daemon live: load, traffic, models, queues, GPUs and firing alerts.'
  static description =
    'A terminal view for users without Grafana. Reads the daemon’s own figures from its gRPC MonitoringService (WatchStats), so the daemon must serve gRPC (the default). On a terminal each frame replaces the last until Ctrl-C; piped, frames follow one another. Request rates are per second since the previous frame. With auth on, the key needs the monitor or admin scope. --json prints the snapshots as one JSON document after --count of them (default 1).'
  static examples = [
    '<%= config.bin %> top --key "$HELIX_API_KEY"',
    '<%= config.bin %> top --interval 5 --count 3',
    '<%= config.bin %> top --json --count 2 --key "$HELIX_API_KEY"',
  ]

  static flags = {
    url: Flags.string({
      description:
        'Daemon REST URL (default: the running daemon recorded in data/daemon.json, else helix.yaml).',
    }),
    key: Flags.string({ description: 'API key with the monitor or admin scope.', env: 'HELIX_API_KEY' }),
    interval: Flags.string({ description: 'Seconds between frames (0.1 to 60).', default: '2' }),
    count: Flags.integer({
      description: 'Stop after this many frames (default: until Ctrl-C; with --json, 1).',
      min: 1,
    }),
    gpus: Flags.boolean({
      description: 'Show the GPUs (nvidia-smi, sampled by the daemon).',
      default: true,
      allowNo: true,
    }),
  }

  async run(): Promise<{ snapshots: StatsSnapshot[] }> {
    const { flags } = await this.parse(Top)
    const seconds = Number(flags.interval)
    if (!Number.isFinite(seconds) || seconds < 0.1 || seconds > 60) {
      throw new UserError(
        'INVALID_INPUT',
        `--interval must be a number of seconds from 0.1 to 60, not "${flags.interval}".`,
        {
          hint: 'For example --interval 2.',
        },
      )
    }
    const json = this.jsonEnabled()
    const count = flags.count ?? (json ? 1 : 0)
    const config = await this.config_()
    const stop = new AbortController()
    const onSigint = () => stop.abort()
    process.once('SIGINT', onSigint)
    const snapshots: StatsSnapshot[] = []
    const terminal = Boolean(process.stdout.isTTY)
    let previous: StatsSnapshot | undefined
    try {
      await watchDaemon(
        {
          home: this.home,
          config,
          url: flags.url,
          apiKey: flags.key,
          intervalMs: Math.round(seconds * 1000),
          count,
          gpus: flags.gpus,
          signal: stop.signal,
        },
        (snapshot, target) => {
          if (json) snapshots.push(snapshot)
          else {
            const frame = `helix top — ${target}, every ${seconds} s${count ? `, ${count} frames` : ', Ctrl-C to stop'}\n${renderTop(snapshot, previous)}`
            process.stdout.write(terminal ? `${CLEAR}${frame}\n` : `${previous ? '\n' : ''}${frame}\n`)
          }
          previous = snapshot
        },
      )
    } finally {
      process.removeListener('SIGINT', onSigint)
    }
    return { snapshots }
  }
}
