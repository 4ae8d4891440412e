import { Flags } from '@oclif/core'
import { renderGenerated } from '../../cli/output/keys.js'
import { type GenerateResult, generateKeys } from '../../provision/jwt/jwt-keys.js'
import { HelixCommand } from '../../shared/base-command.js'
import type { JwtAlgorithm } from '../../shared/config-schema.js'
import { JWT_ALGORITHMS } from '../../state/jwt/key-algorithms.js'

export default class KeysGenerate extends HelixCommand<GenerateResult> {
  static summary = 'Create the JWT signing key (kept if one exists; --force starts a fresh key set).'
  static description =
    'Writes keys/<kid>.private.pem (0600), keys/jwks.json (public keys) and keys/keys.json (lifecycle). The kid is the RFC 7638 thumbprint of the key. With --force every existing key is retired at once: tokens it signed stop verifying.'
  static examples = [
    '<%= config.bin %> keys generate',
    '<%= config.bin %> keys generate --alg RS256 --force --json',
  ]
  static flags = {
    alg: Flags.string({
      description: 'Signing algorithm (default: jwt.algorithm in helix.yaml, else EdDSA).',
      options: [...JWT_ALGORITHMS],
    }),
    force: Flags.boolean({ description: 'Replace the existing keys with a fresh set.', default: false }),
  }

  async run(): Promise<GenerateResult> {
    const { flags } = await this.parse(KeysGenerate)
    const result = await generateKeys(this.home, await this.config_(), {
      alg: flags.alg as JwtAlgorithm | undefined,
      force: flags.force,
    })
    this.log(renderGenerated(result))
    return result
  }
}
