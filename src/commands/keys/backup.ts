import { Flags } from '@oclif/core'
import { renderBackup } from '../../cli/output/keys.js'
import { resolvePassphrase } from '../../provision/jwt/backup-passphrase.js'
import { type BackupResult, backupKeys } from '../../provision/jwt/key-backup.js'
import { HelixCommand } from '../../shared/base-command.js'

export default class KeysBackup extends HelixCommand<BackupResult> {
  static summary = 'Write an encrypted backup of the JWT keys (scrypt + AES-256-GCM).'
  static description =
    'The passphrase comes from HELIX_BACKUP_PASSPHRASE, or is asked for (hidden, twice) on a terminal. The file is written 0600.'
  static examples = ['HELIX_BACKUP_PASSPHRASE=… <%= config.bin %> keys backup --out keys.backup']
  static flags = {
    out: Flags.string({ char: 'o', description: 'File to write the encrypted backup to.', required: true }),
    force: Flags.boolean({ description: 'Replace --out if it exists.', default: false }),
  }

  async run(): Promise<BackupResult> {
    const { flags } = await this.parse(KeysBackup)
    const passphrase = await resolvePassphrase('backup', { interactive: this.interactive() })
    const result = await backupKeys(this.home, { out: flags.out, passphrase, force: flags.force })
    this.log(renderBackup(result))
    return result
  }
}
