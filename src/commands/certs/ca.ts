import { Flags } from '@oclif/core'
import { renderCaResult } from '../../cli/output/certs.js'
import { type CaResult, createAuthority } from '../../provision/certs/authority.js'
import { HelixCommand } from '../../shared/base-command.js'
import type { KeyType } from '../../shared/config-schema.js'

export default class CertsCa extends HelixCommand<CaResult> {
  static summary = 'Create the helix certificate authority (certs/ca.crt, certs/ca.key).'
  static description =
    'ECDSA P-256 by default (RSA-3072 with --key-type rsa), valid tls.ca_years (10). An existing CA is kept byte-identical; --force replaces it, after which the leaves must be re-issued (`helix certs rotate --ca` rolls the CA with an overlap instead).'
  static examples = [
    '<%= config.bin %> certs ca',
    '<%= config.bin %> certs ca --key-type rsa --dir /srv/helix',
    '<%= config.bin %> certs ca --force --json',
  ]
  static flags = {
    'key-type': Flags.string({
      description: 'CA key algorithm (default: tls.key_type, else ecdsa).',
      options: ['ecdsa', 'rsa'],
    }),
    force: Flags.boolean({ description: 'Replace an existing CA.', default: false }),
  }

  async run(): Promise<CaResult> {
    const { flags } = await this.parse(CertsCa)
    const result = await createAuthority(this.home, await this.config_(), {
      keyType: flags['key-type'] as KeyType | undefined,
      force: flags.force,
    })
    this.log(renderCaResult(result))
    return result
  }
}
