import { Args, Flags } from '@oclif/core'
import { renderRemoved } from '../../cli/output/models.js'
import { type RemovedModel, removeModel } from '../../core/infer/repository-admin.js'
import { repositoryDir } from '../../core/infer/repository-location.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class ModelsRemove extends HelixCommand<RemovedModel> {
  static summary = 'Remove a model, or one of its versions, from the repository.'
  static description =
    'A running daemon keeps serving what it loaded until `helix models load NAME` (or unload) tells it otherwise.'
  static examples = ['<%= config.bin %> models remove cls --version 1', '<%= config.bin %> models remove cls']
  static args = { name: Args.string({ description: 'Model name.', required: true }) }
  static flags = {
    version: Flags.integer({ description: 'Remove only this version.', min: 1 }),
  }

  async run(): Promise<RemovedModel> {
    const { args, flags } = await this.parse(ModelsRemove)
    const config = await this.config_()
    const removed = await removeModel(repositoryDir(this.home, config), args.name, { version: flags.version })
    this.log(renderRemoved(removed))
    return removed
  }
}
