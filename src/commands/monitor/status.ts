import { renderMonitorStatus } from '../../cli/output/monitor.js'
import { type MonitorStatusReport, monitorStatus } from '../../ops/monitor.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class MonitorStatus extends HelixCommand<MonitorStatusReport> {
  static summary =
    'Show whether Prometheus and Alertmanager run (helix monitor up) and the alerts firing now.'
  static description =
    "Reads active alerts from Alertmanager's API v2 (/api/v2/alerts), or from Prometheus (/api/v1/alerts, pending ones too) when only Prometheus runs."
  static examples = ['<%= config.bin %> monitor status', '<%= config.bin %> monitor status --json']

  async run(): Promise<MonitorStatusReport> {
    await this.parse(MonitorStatus)
    const report = await monitorStatus(this.home)
    this.log(renderMonitorStatus(report))
    return report
  }
}
