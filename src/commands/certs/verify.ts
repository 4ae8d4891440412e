import { Flags } from '@oclif/core'
import { renderVerifyResult } from '../../cli/output/certs.js'
import { type VerifyResult, verificationFailure, verifyCertificates } from '../../provision/certs/verify.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class CertsVerify extends HelixCommand<VerifyResult> {
  static summary =
    'Check the certificates: chain to the CA (or ca-bundle.crt), validity dates, purpose, keys and host names.'
  static description =
    'Exits 1 with the CERT_* code of the first failed check (CERT_UNTRUSTED, CERT_EXPIRED, CERT_HOST_MISMATCH, …).'
  static examples = [
    '<%= config.bin %> certs verify',
    '<%= config.bin %> certs verify --host api.example.com --json',
  ]
  static flags = {
    host: Flags.string({
      description: 'Host name or IP the server certificate must match (default: the configured domain).',
    }),
  }

  async run(): Promise<VerifyResult> {
    const { flags } = await this.parse(CertsVerify)
    const result = await verifyCertificates(this.home, await this.config_(), { host: flags.host })
    this.log(renderVerifyResult(result))
    if (!result.ok) throw verificationFailure(result)
    return result
  }
}
