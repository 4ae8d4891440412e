import { Args, Flags } from '@oclif/core'
import { renderIssueResult } from '../../cli/output/certs.js'
import { type IssueResult, issueCertificate } from '../../provision/certs/issue.js'
import { HelixCommand } from '../../shared/base-command.js'
import type { KeyType } from '../../shared/config-schema.js'

export default class CertsIssue extends HelixCommand<IssueResult> {
  static summary = 'Issue (or re-issue) the server or client certificate from the existing helix CA.'
  static description =
    'server: SANs are the domain and sans of helix.yaml, any --san, and always localhost, 127.0.0.1 and ::1; EKU serverAuth. client: EKU clientAuth, plus certs/client.p12 for curl and browsers, protected by --p12-password or a generated password printed once. Private keys are written 0600.'
  static examples = [
    '<%= config.bin %> certs issue server --san api.example.com --san 10.0.0.5',
    '<%= config.bin %> certs issue server --days 30',
    '<%= config.bin %> certs issue client --name ci-runner --json',
    'HELIX_P12_PASSWORD=… <%= config.bin %> certs issue client',
  ]
  static args = {
    kind: Args.string({ description: 'Which leaf to issue.', options: ['server', 'client'], required: true }),
  }
  static flags = {
    san: Flags.string({
      description: 'Extra subject alternative name (DNS or IP) for a server certificate; repeatable.',
      multiple: true,
    }),
    days: Flags.integer({
      description: 'Validity in days, at most 397 (default tls.server_days / tls.client_days).',
    }),
    name: Flags.string({
      description: 'Common name (default: the domain for server, helix-client for client).',
    }),
    'p12-password': Flags.string({
      description: 'Password for client.p12 (default: a generated one, printed once).',
      env: 'HELIX_P12_PASSWORD',
    }),
    'key-type': Flags.string({
      description: 'Leaf key algorithm (default: tls.key_type, else that of the CA).',
      options: ['ecdsa', 'rsa'],
    }),
  }

  async run(): Promise<IssueResult> {
    const { args, flags } = await this.parse(CertsIssue)
    const result = await issueCertificate(this.home, await this.config_(), args.kind as 'server' | 'client', {
      sans: flags.san,
      days: flags.days,
      name: flags.name,
      p12Password: flags['p12-password'],
      keyType: flags['key-type'] as KeyType | undefined,
    })
    this.log(renderIssueResult(result))
    return result
  }
}
