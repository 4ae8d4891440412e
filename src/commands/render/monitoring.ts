import { renderRenderReport } from '../../cli/output/render.js'
import type { RenderReport } from '../../provision/render/render.js'
import { renderOne } from '../../provision/render/render-one.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class RenderMonitoring extends HelixCommand<RenderReport> {
  static summary =
    'Re-render monitoring/: prometheus.yml, rules.yml, alertmanager.yml, grafana-dashboard.json, vector.yaml (log shipping).'
  static examples = ['<%= config.bin %> render monitoring', '<%= config.bin %> render monitoring --json']

  async run(): Promise<RenderReport> {
    await this.parse(RenderMonitoring)
    const report = await renderOne(this.home, 'monitoring')
    this.log(renderRenderReport(report, this.home.root))
    return report
  }
}
