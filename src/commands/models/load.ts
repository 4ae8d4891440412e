import { Args } from '@oclif/core'
import { authorization, modelControl } from '../../cli/daemon-client.js'
import { daemonFlags } from '../../cli/daemon-flags.js'
import { HelixCommand } from '../../shared/base-command.js'
import { locateDaemon } from '../../state/daemon-record.js'

export interface ModelControlResult {
  model: string
  action: 'load' | 'unload'
  url: string
}

export default class ModelsLoad extends HelixCommand<ModelControlResult> {
  static summary = 'Ask the running daemon to (re)load a model from the repository without dropping requests.'
  static description =
    'POSTs /v2/repository/models/NAME/load to the daemon at --url (default: the daemon running on the helix directory, recorded in data/daemon.json, else server.host and server.port of helix.yaml).'
  static examples = [
    '<%= config.bin %> models load cls',
    '<%= config.bin %> models load cls --url http://127.0.0.1:8080',
  ]
  static args = { name: Args.string({ description: 'Model name.', required: true }) }
  static flags = daemonFlags
  /** What this command asks the daemon to do; `models unload` is the same command with 'unload'. */
  protected readonly action: ModelControlResult['action'] = 'load'

  async run(): Promise<ModelControlResult> {
    const { args, flags } = await this.parse(this.ctor as typeof ModelsLoad)
    const { url } = await locateDaemon(this.home, await this.config_(), flags.url)
    await modelControl(url, args.name, this.action, authorization(flags['api-key']))
    this.log(`Model ${args.name}: ${this.action} done (${url}).`)
    return { model: args.name, action: this.action, url }
  }
}
