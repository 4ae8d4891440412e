import { renderRenderReport } from '../../cli/output/render.js'
import type { RenderReport } from '../../provision/render/render.js'
import { renderOne } from '../../provision/render/render-one.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class RenderHelm extends HelixCommand<RenderReport> {
  static summary = 'Re-render the Helm chart in helm/helix/ from helix.yaml.'
  static examples = ['<%= config.bin %> render helm', '<%= config.bin %> render helm --json']

  async run(): Promise<RenderReport> {
    await this.parse(RenderHelm)
    const report = await renderOne(this.home, 'helm')
    this.log(renderRenderReport(report, this.home.root))
    return report
  }
}
