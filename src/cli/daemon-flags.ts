import { Flags } from '@oclif/core'

/** How a CLI command reaches a running daemon: its URL and an API key with admin scope. */
export const daemonFlags = {
  url: Flags.string({ description: 'Daemon URL (default from helix.yaml server.host/port).' }),
  'api-key': Flags.string({
    description: 'API key (admin scope) for a daemon that requires one.',
    env: 'HELIX_API_KEY',
  }),
}
