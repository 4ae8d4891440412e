import { renderPruned } from '../../cli/output/keys.js'
import { type PruneResult, pruneKeys } from '../../provision/jwt/jwt-keys.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class KeysPrune extends HelixCommand<PruneResult> {
  static summary =
    'Retire previous keys whose overlap has passed (remove them from the JWKS, delete their private keys).'
  static examples = ['<%= config.bin %> keys prune --json']

  async run(): Promise<PruneResult> {
    const { retired, removed } = await pruneKeys(this.home)
    const result = { retired, removed }
    this.log(renderPruned(result))
    return result
  }
}
