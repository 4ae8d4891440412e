import * as p from '@clack/prompts'
import { UserError } from '../../shared/errors.js'

export const PASSPHRASE_ENV = 'HELIX_BACKUP_PASSPHRASE'

/** Asks for a secret without echoing it; returns the clack cancel symbol on Ctrl-C. */
export type SecretPrompt = (message: string) => Promise<string | symbol>

const hiddenPrompt: SecretPrompt = (message) => p.password({ message, mask: '*' })

export interface PassphraseSource {
  /** True on a TTY without --json (HelixCommand.interactive). */
  interactive: boolean
  env?: NodeJS.ProcessEnv
  ask?: SecretPrompt
}

function cancelled(): UserError {
  return new UserError('CANCELLED', 'Cancelled; nothing was written.', {
    hint: `Set ${PASSPHRASE_ENV} to run without a prompt.`,
  })
}

/**
 * The passphrase of `keys backup` / `keys restore`: from HELIX_BACKUP_PASSPHRASE, else a hidden prompt
 * on a TTY (asked twice for a backup, so a typo cannot lock the keys away), else a UserError.
 */
export async function resolvePassphrase(
  purpose: 'backup' | 'restore',
  source: PassphraseSource,
): Promise<string> {
  const fromEnv = (source.env ?? process.env)[PASSPHRASE_ENV]
  if (fromEnv) return fromEnv
  if (!source.interactive) {
    throw new UserError('PASSPHRASE_REQUIRED', `The ${purpose} needs a passphrase.`, {
      hint: `Set ${PASSPHRASE_ENV}, or run the command on a terminal to be asked for it.`,
    })
  }
  const ask = source.ask ?? hiddenPrompt
  const first = await ask(
    purpose === 'backup' ? 'Passphrase to encrypt the backup' : 'Passphrase of the backup',
  )
  if (typeof first !== 'string') throw cancelled()
  if (purpose === 'restore') return first
  const again = await ask('Repeat the passphrase')
  if (typeof again !== 'string') throw cancelled()
  if (again !== first) {
    throw new UserError('PASSPHRASE_MISMATCH', 'The two passphrases differ; nothing was written.', {
      hint: 'Run the command again and type the same passphrase twice.',
    })
  }
  return first
}
