import { Args, Flags } from '@oclif/core'
import { renderAdded } from '../../cli/output/models.js'
import { type AddedModel, addModel } from '../../core/infer/repository-admin.js'
import { repositoryDir } from '../../core/infer/repository-location.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class ModelsAdd extends HelixCommand<AddedModel> {
  static summary =
    'Copy an ONNX model into the repository as a new version, after checking onnxruntime loads it.'
  static description =
    'Writes models/NAME/VERSION/model.onnx atomically (temp directory + rename): on failure nothing is left behind.'
  static examples = [
    '<%= config.bin %> models add cls ./ch_ppocr_mobile_v2.0_cls_infer.onnx',
    '<%= config.bin %> models add cls ./cls-v2.onnx --version 2',
  ]
  static args = {
    name: Args.string({ description: 'Model name (letters, digits, . _ -).', required: true }),
    path: Args.string({ description: 'Path of the .onnx file.', required: true }),
  }
  static flags = {
    version: Flags.integer({ description: 'Version number (default: the next one).', min: 1 }),
  }

  async run(): Promise<AddedModel> {
    const { args, flags } = await this.parse(ModelsAdd)
    const config = await this.config_()
    const added = await addModel(repositoryDir(this.home, config), args.name, args.path, {
      version: flags.version,
    })
    this.log(renderAdded(added))
    return added
  }
}
