import { Args, Flags } from '@oclif/core'
import { renderRestored } from '../../cli/output/keys.js'
import { resolvePassphrase } from '../../provision/jwt/backup-passphrase.js'
import { type RestoreResult, restoreKeys } from '../../provision/jwt/key-backup.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class KeysRestore extends HelixCommand<RestoreResult> {
  static summary = 'Restore the JWT keys from an encrypted backup.'
  static description =
    'Checks the whole backup before writing anything, then writes it in one step. Existing keys are replaced only with --force.'
  static examples = ['HELIX_BACKUP_PASSPHRASE=… <%= config.bin %> keys restore keys.backup --force']
  static args = {
    file: Args.string({ description: 'Backup written by `helix keys backup`.', required: true }),
  }
  static flags = {
    force: Flags.boolean({ description: 'Replace existing keys.', default: false }),
  }

  async run(): Promise<RestoreResult> {
    const { args, flags } = await this.parse(KeysRestore)
    const passphrase = await resolvePassphrase('restore', { interactive: this.interactive() })
    const result = await restoreKeys(this.home, { file: args.file, passphrase, force: flags.force })
    this.log(renderRestored(result))
    return result
  }
}
