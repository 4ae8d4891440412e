import { renderMonitorDown } from '../../cli/output/monitor.js'
import { type MonitorDownReport, monitorDown } from '../../ops/monitor.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class MonitorDown extends HelixCommand<MonitorDownReport> {
  static summary = 'Stop the Prometheus and Alertmanager that helix monitor up started; their data stays.'
  static examples = ['<%= config.bin %> monitor down']

  async run(): Promise<MonitorDownReport> {
    await this.parse(MonitorDown)
    const report = await monitorDown(this.home)
    this.log(renderMonitorDown(report))
    return report
  }
}
