import { Args, Flags } from '@oclif/core'
import { renderAdded } from '../../cli/output/models.js'
import { type AddedModel, addModel } from '../../core/infer/repository-admin.js'
import { repositoryDir } from '../../core/infer/repository-location.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class ModelsAdd extends HelixCommand<AddedModel> {
  static summary =
    'Copy an ONNX, TorchScript or TensorFlow.js model, or a Hugging Face–format ONNX text-model folder, into the repository as a new version, after checking it loads.'
  static description =
    'Writes models/NAME/VERSION/model.onnx (or model.pt) atomically (temp directory + rename): on failure nothing is left behind. A folder (an Optimum or transformers.js export: config.json, tokenizer.json, tokenizer_config.json, onnx/model.onnx) becomes models/NAME/VERSION/ with its tokenizer and onnx/model.onnx, after its tokenizer, chat template and graph load; it is served under /v1 (OpenAI API) by its task. A .pt file is loaded by the PyTorch worker (backends.pytorch.python) with the config.yaml that names its inputs and outputs, and the warmup is run through it. A TensorFlow.js model.json (or a folder holding one) is copied with the weight shards it names to models/NAME/VERSION/model.json after tfjs has loaded it and run the warmup.'
  static examples = [
    '<%= config.bin %> models add cls ./ch_ppocr_mobile_v2.0_cls_infer.onnx',
    '<%= config.bin %> models add cls ./cls-v2.onnx --version 2',
    '<%= config.bin %> models add mlp ./mlp.pt --config ./config.yaml',
    '<%= config.bin %> models add qwen ./Qwen3-0.6B-ONNX',
    '<%= config.bin %> models add mnist ./mnist_web_model/model.json',
  ]
  static args = {
    name: Args.string({ description: 'Model name (letters, digits, . _ -).', required: true }),
    path: Args.string({
      description:
        'Path of the .onnx file, the TorchScript .pt file, the TensorFlow.js model.json (or its folder), or the Hugging Face–format folder.',
      required: true,
    }),
  }
  static flags = {
    version: Flags.integer({ description: 'Version number (default: the next one).', min: 1 }),
    config: Flags.string({
      description:
        "The model's config.yaml, checked and written to models/NAME/config.yaml (a .pt model needs one naming its inputs and outputs).",
    }),
  }

  async run(): Promise<AddedModel> {
    const { args, flags } = await this.parse(ModelsAdd)
    const config = await this.config_()
    const added = await addModel(repositoryDir(this.home, config), args.name, args.path, {
      version: flags.version,
      ...(flags.config ? { config: flags.config } : {}),
      pytorch: config.backends.pytorch,
    })
    this.log(renderAdded(added))
    return added
  }
}
