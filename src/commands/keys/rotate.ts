import { Flags } from '@oclif/core'
import { renderRotated } from '../../cli/output/keys.js'
import { type RotateResult, rotateKeys } from '../../provision/jwt/jwt-keys.js'
import { HelixCommand } from '../../shared/base-command.js'
import type { JwtAlgorithm } from '../../shared/config-schema.js'
import { JWT_ALGORITHMS } from '../../state/jwt/key-algorithms.js'

export default class KeysRotate extends HelixCommand<RotateResult> {
  static summary = 'Make a new current signing key; the old one stays in the JWKS for jwt.overlap_days.'
  static description =
    'Tokens signed before the rotation keep verifying until the overlap ends; then the old key leaves keys/jwks.json and its private key is deleted (on the next rotate, list or prune).'
  static examples = ['<%= config.bin %> keys rotate', '<%= config.bin %> keys rotate --alg ES256 --json']
  static flags = {
    alg: Flags.string({
      description: 'Algorithm of the new key (default: jwt.algorithm, else that of the current key).',
      options: [...JWT_ALGORITHMS],
    }),
  }

  async run(): Promise<RotateResult> {
    const { flags } = await this.parse(KeysRotate)
    const result = await rotateKeys(this.home, await this.config_(), {
      alg: flags.alg as JwtAlgorithm | undefined,
    })
    this.log(renderRotated(result))
    for (const warning of result.warnings) this.note(`Warning: ${warning}`)
    return result
  }
}
