import { renderGpus } from '../cli/output/gpus.js'
import { discoverGpus, type GpuDiscovery } from '../core/gpu/nvidia-smi.js'
import { HelixCommand } from '../shared/base-command.js'

export default class Gpus extends HelixCommand<GpuDiscovery> {
  static summary = 'List the NVIDIA GPUs models can be placed on (via nvidia-smi).'
  static description =
    'Runs `nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu`. Without a GPU (or with a driver error) it says so and why, and exits 0: running on the CPU is a valid setup.'
  static examples = ['<%= config.bin %> gpus', '<%= config.bin %> gpus --json']

  async run(): Promise<GpuDiscovery> {
    await this.parse(Gpus)
    const discovery = await discoverGpus()
    this.log(renderGpus(discovery))
    return discovery
  }
}
