import { renderChecks } from '../cli/output/doctor.js'
import { type DoctorReport, runDoctor } from '../ops/doctor.js'
import { HelixCommand } from '../shared/base-command.js'

export default class Doctor extends HelixCommand<DoctorReport> {
  static summary = 'Check this machine and helix directory, with a fix to try for each problem.'
  static description =
    'Checks Node.js, onnxruntime execution providers, the NVIDIA driver, nginx/openssl, the daemon’s REST and gRPC ports (those of the running daemon recorded in data/daemon.json, else the configured ones), key file permissions, certificate expiry, JWT key age and disk space. Exits 1 when any check fails (warnings do not fail).'
  static examples = ['<%= config.bin %> doctor', '<%= config.bin %> doctor --json']

  async run(): Promise<DoctorReport> {
    await this.parse(Doctor)
    const config = await this.config_()
    const report = await runDoctor({ home: this.home, config })
    this.log(renderChecks(report.checks))
    if (!report.ok) process.exitCode = 1
    return report
  }
}
