import type { MonitorDownReport, MonitorStatusReport, MonitorUpReport } from '../../ops/monitor.js'

const NAMES = { prometheus: 'Prometheus', alertmanager: 'Alertmanager' } as const

/** Human summary of `helix monitor up`. */
export function renderMonitorUp(report: MonitorUpReport): string {
  const lines: string[] = []
  if (report.rendered) lines.push('Rendered monitoring/ (it was missing files).')
  for (const p of report.started)
    lines.push(`${NAMES[p.tool]} started: ${p.url} (pid ${p.pid}, log ${p.log})`)
  for (const p of report.running) lines.push(`${NAMES[p.tool]} already running: ${p.url} (pid ${p.pid})`)
  for (const m of report.missing)
    lines.push(`${NAMES[m.tool]} is not installed: apt-get install ${m.debianPackage}`)
  lines.push('Firing alerts: helix monitor status. Stop both: helix monitor down.')
  return lines.join('\n')
}

/** Human summary of `helix monitor status`: the processes, then one line per alert. */
export function renderMonitorStatus(report: MonitorStatusReport): string {
  const lines: string[] = []
  if (report.processes.length === 0)
    lines.push('Prometheus and Alertmanager are not running (helix monitor up).')
  for (const p of report.processes)
    lines.push(`${NAMES[p.tool]}: ${p.alive ? `running at ${p.url} (pid ${p.pid})` : 'not running'}`)
  if (report.source) {
    lines.push(report.alerts.length === 0 ? 'No alerts firing.' : `${report.alerts.length} alert(s):`)
    for (const a of report.alerts) {
      const where = ['model', 'version', 'instance', 'cert', 'gpu', 'key_id', 'limit']
        .filter((k) => a.labels[k])
        .map((k) => `${k}=${a.labels[k]}`)
        .join(' ')
      lines.push(`  ${a.state.padEnd(8)} ${a.severity.padEnd(9)} ${a.name} ${where}  ${a.summary}`.trimEnd())
    }
  }
  return lines.join('\n')
}

/** Human summary of `helix monitor down`. */
export function renderMonitorDown(report: MonitorDownReport): string {
  if (report.stopped.length === 0) return 'Nothing to stop: helix monitor up is not running here.'
  return report.stopped.map((p) => `${NAMES[p.tool]} stopped (pid ${p.pid}).`).join('\n')
}
