import { Flags } from '@oclif/core'

/** How a CLI command reaches a running daemon: its URL and an API key with admin scope. */
export const daemonFlags = {
  url: Flags.string({
    description:
      'Daemon URL (default: the running daemon recorded in data/daemon.json, else helix.yaml server.host/port).',
  }),
  'api-key': Flags.string({
    description: 'API key (admin scope) for a daemon that requires one.',
    env: 'HELIX_API_KEY',
  }),
}

/** How `helix serve` and `helix up` write their log lines. */
export const logFormatFlag = Flags.string({
  description:
    'Log lines: pretty (short human lines) or json (default: pretty on a terminal, else json; logging.format, HELIX_LOG_FORMAT).',
  options: ['pretty', 'json'],
})
