import { renderRenderReport } from '../../cli/output/render.js'
import type { RenderReport } from '../../provision/render/render.js'
import { renderOne } from '../../provision/render/render-one.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class RenderDocker extends HelixCommand<RenderReport> {
  static summary =
    'Re-render docker/: Dockerfile, Dockerfile.gpu, compose.yaml (helix, postgres, redis, nginx).'
  static examples = ['<%= config.bin %> render docker', '<%= config.bin %> render docker --json']

  async run(): Promise<RenderReport> {
    await this.parse(RenderDocker)
    const report = await renderOne(this.home, 'docker')
    this.log(renderRenderReport(report, this.home.root))
    return report
  }
}
