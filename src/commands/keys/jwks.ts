import type { JSONWebKeySet } from 'jose'
import { HelixCommand } from '../../shared/base-command.js'
import { loadJwks } from '../../state/jwt/signing-key.js'

export default class KeysJwks extends HelixCommand<JSONWebKeySet> {
  static summary = 'Print the JSON Web Key Set (public keys only) that verifiers should trust now.'
  static description = 'The same document the daemon serves at /.well-known/jwks.json.'
  static examples = ['<%= config.bin %> keys jwks > jwks.json']

  async run(): Promise<JSONWebKeySet> {
    const jwks = await loadJwks(this.home)
    this.log(JSON.stringify(jwks, null, 2))
    return jwks
  }
}
