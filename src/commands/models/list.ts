import { Flags } from '@oclif/core'
import { authorization, repositoryIndex } from '../../cli/daemon-client.js'
import { daemonFlags } from '../../cli/daemon-flags.js'
import { renderModelList } from '../../cli/output/models.js'
import { listRepository } from '../../core/infer/model-listing.js'
import { repositoryDir } from '../../core/infer/repository-location.js'
import type { ModelIndexEntry } from '../../core/infer/types.js'
import { HelixCommand } from '../../shared/base-command.js'
import { locateDaemon } from '../../state/daemon-record.js'

export default class ModelsList extends HelixCommand<ModelIndexEntry[]> {
  static summary = 'List the models of the repository: versions, state, device and execution provider.'
  static description =
    'Without --url, loads every model of the repository once (as the daemon would) to report which load and why the others do not, then releases them. With --url, asks the running daemon (POST /v2/repository/index).'
  static examples = [
    '<%= config.bin %> models list',
    '<%= config.bin %> models list --json',
    '<%= config.bin %> models list --url http://127.0.0.1:8080',
  ]
  static flags = {
    url: Flags.string({ description: 'Ask this running daemon instead of loading from disk.' }),
    daemon: Flags.boolean({
      description:
        'Ask the daemon running on the helix directory (data/daemon.json), else the one at server.host:port of helix.yaml.',
      default: false,
    }),
    'api-key': daemonFlags['api-key'],
  }

  async run(): Promise<ModelIndexEntry[]> {
    const { flags } = await this.parse(ModelsList)
    const config = await this.config_()
    const url = flags.url ?? (flags.daemon ? (await locateDaemon(this.home, config)).url : undefined)
    const rows = url
      ? await repositoryIndex(url, authorization(flags['api-key']))
      : await listRepository(repositoryDir(this.home, config), { defaultDevice: config.models.device })
    this.log(renderModelList(rows))
    return rows
  }
}
