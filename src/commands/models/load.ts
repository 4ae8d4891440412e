import { Args, Flags } from '@oclif/core'
import { authorization, daemonUrl, modelControl } from '../../runtime/infer/daemon-client.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class ModelsLoad extends HelixCommand<{ model: string; action: 'load'; url: string }> {
  static summary = 'Ask the running daemon to (re)load a model from the repository without dropping requests.'
  static description =
    'POSTs /v2/repository/models/NAME/load to the daemon at --url (default: server.host and server.port of helix.yaml).'
  static examples = [
    '<%= config.bin %> models load cls',
    '<%= config.bin %> models load cls --url http://127.0.0.1:8080',
  ]
  static args = { name: Args.string({ description: 'Model name.', required: true }) }
  static flags = {
    ...HelixCommand.baseFlags,
    url: Flags.string({ description: 'Daemon URL (default from helix.yaml server.host/port).' }),
    'api-key': Flags.string({
      description: 'API key (admin scope) for a daemon that requires one.',
      env: 'HELIX_API_KEY',
    }),
  }

  async run(): Promise<{ model: string; action: 'load'; url: string }> {
    const { args, flags } = await this.parse(ModelsLoad)
    const url = flags.url ?? daemonUrl((await this.config_()).server)
    await modelControl(url, args.name, 'load', authorization(flags['api-key']))
    this.log(`Model ${args.name}: load done (${url}).`)
    return { model: args.name, action: 'load', url }
  }
}
