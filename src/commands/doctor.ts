import { Flags } from '@oclif/core'
import { renderChecks } from '../cli/output/doctor.js'
import { type DoctorReport, runDoctor } from '../ops/doctor.js'
import { runSecurityChecks } from '../ops/doctor-security.js'
import { HelixCommand } from '../shared/base-command.js'

export default class Doctor extends HelixCommand<DoctorReport> {
  static summary = 'Check this machine and helix directory, with a fix to try for each problem.'
  static description =
    'Checks Node.js, onnxruntime execution providers, the NVIDIA driver, nginx/openssl, the daemon’s REST and gRPC ports (those of the running daemon recorded in data/daemon.json, else the configured ones), key file permissions, certificate expiry, JWT key age and disk space. Exits 1 when any check fails (warnings do not fail).'
  static examples = [
    '<%= config.bin %> doctor',
    '<%= config.bin %> doctor --security',
    '<%= config.bin %> doctor --json',
  ]
  static flags = {
    security: Flags.boolean({
      description:
        'Check the install instead of the machine: file modes, TLS settings, secrets in helix.yaml, default passwords, authentication off or --no-auth, CORS, JWT and API key age, unused admin keys.',
    }),
  }

  async run(): Promise<DoctorReport> {
    const { flags } = await this.parse(Doctor)
    const config = await this.config_()
    const report = flags.security
      ? await runSecurityChecks({ home: this.home, config })
      : await runDoctor({ home: this.home, config })
    this.log(renderChecks(report.checks))
    if (!report.ok) process.exitCode = 1
    return report
  }
}
