import { Flags } from '@oclif/core'
import { renderRotateResult } from '../../cli/output/certs.js'
import { type RotateResult, rotateCertificates } from '../../provision/certs/rotate.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class CertsRotate extends HelixCommand<RotateResult> {
  static summary =
    'Re-issue the server and client certificates; with --ca, roll the CA with an overlap bundle.'
  static description =
    `Without flags: new keys and leaves from the current CA, keeping their names (SANs, common names).
--ca: a new CA replaces certs/ca.crt and ca.key, certs/ca-bundle.crt holds the new and the old CA, and the leaves are re-issued from the new CA. Trust ca-bundle.crt wherever peers may still present a leaf of the old CA.
--finish: once every old leaf is replaced, ca-bundle.crt is rewritten to hold the current CA only.`
  static examples = [
    '<%= config.bin %> certs rotate',
    '<%= config.bin %> certs rotate --ca',
    '<%= config.bin %> certs rotate --finish --json',
  ]
  static flags = {
    ca: Flags.boolean({
      description: 'Roll the CA too (keeps the old CA in certs/ca-bundle.crt).',
      default: false,
      exclusive: ['finish'],
    }),
    finish: Flags.boolean({
      description: 'End a CA roll: drop old CAs from certs/ca-bundle.crt.',
      default: false,
      exclusive: ['ca', 'p12-password'],
    }),
    'p12-password': Flags.string({
      description: 'Password for the new client.p12 (default: a generated one, printed once).',
      env: 'HELIX_P12_PASSWORD',
    }),
  }

  async run(): Promise<RotateResult> {
    const { flags } = await this.parse(CertsRotate)
    const result = await rotateCertificates(this.home, await this.config_(), {
      ca: flags.ca,
      finish: flags.finish,
      p12Password: flags['p12-password'],
    })
    this.log(renderRotateResult(result))
    return result
  }
}
