import { renderKeyList } from '../../cli/output/keys.js'
import { type ListResult, listKeys } from '../../provision/jwt/jwt-keys.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class KeysList extends HelixCommand<ListResult> {
  static summary = 'List JWT signing keys: kid, algorithm, status, age and when previous keys retire.'
  static description =
    'Retires previous keys whose overlap has passed before listing. Warns when the current key is older than jwt.rotate_after_days.'
  static examples = ['<%= config.bin %> keys list', '<%= config.bin %> keys list --json']

  async run(): Promise<ListResult> {
    const result = await listKeys(this.home, await this.config_())
    this.log(renderKeyList(result))
    for (const warning of result.warnings) this.note(`Warning: ${warning}`)
    return result
  }
}
