import { Flags } from '@oclif/core'
import { renderMonitorUp } from '../../cli/output/monitor.js'
import { type MonitorUpReport, monitorUp } from '../../ops/monitor.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class MonitorUp extends HelixCommand<MonitorUpReport> {
  static summary = 'Start Prometheus and Alertmanager in the background on the files of monitoring/.'
  static description =
    'For a one-box install: runs the Debian prometheus and prometheus-alertmanager programs (those installed) on 127.0.0.1 with monitoring/prometheus.yml, rules.yml and alertmanager.yml (rendered first when missing; re-render with `helix render monitoring` after changing alerts.* in helix.yaml, then `helix monitor down` and `up`). Their data and logs go under data/monitor/.'
  static examples = [
    '<%= config.bin %> monitor up',
    '<%= config.bin %> monitor up --prometheus-port 19090 --alertmanager-port 19093',
  ]

  static flags = {
    'prometheus-port': Flags.integer({
      description: 'Port of Prometheus on 127.0.0.1.',
      default: 9090,
      min: 1,
      max: 65535,
    }),
    'alertmanager-port': Flags.integer({
      description: 'Port of Alertmanager on 127.0.0.1.',
      default: 9093,
      min: 1,
      max: 65535,
    }),
  }

  async run(): Promise<MonitorUpReport> {
    const { flags } = await this.parse(MonitorUp)
    const report = await monitorUp(this.home, {
      prometheusPort: flags['prometheus-port'],
      alertmanagerPort: flags['alertmanager-port'],
    })
    this.log(renderMonitorUp(report))
    return report
  }
}
