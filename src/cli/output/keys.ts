import type {
  GenerateResult,
  KeyInfo,
  ListResult,
  PruneResult,
  RotateResult,
} from '../../provision/jwt/jwt-keys.js'
import type { BackupResult, RestoreResult } from '../../provision/jwt/key-backup.js'
import { renderFileReport, renderTable } from './table.js'

/** Human output of the `helix keys` commands (--json prints the typed results instead). */
export function renderGenerated(result: GenerateResult): string {
  const lines = [renderFileReport(`JWT signing key ${result.kid} (${result.alg}) is current.`, result)]
  for (const path of result.removed) lines.push(`  deleted  ${path}`)
  return lines.join('\n')
}

function retiredLines(retired: string[], removed: string[]): string[] {
  return [
    ...retired.map((kid) => `Retired ${kid}: its overlap has passed; it is no longer in the JWKS.`),
    ...removed.map((p) => `  deleted  ${p}`),
  ]
}

export function renderRotated(result: RotateResult): string {
  return [
    `New current key ${result.current.kid} (${result.current.alg}); new tokens are signed with it.`,
    ...result.previous.map(
      (k) =>
        `Previous key ${k.kid} stays in ${result.jwks} until ${k.retire_at}, so tokens it signed still verify.`,
    ),
    ...retiredLines(result.retired, result.removed),
  ].join('\n')
}

export function renderPruned(result: PruneResult): string {
  if (result.retired.length === 0 && result.removed.length === 0) return 'No key is due for retirement.'
  return retiredLines(result.retired, result.removed).join('\n')
}

export function renderKeyList(result: ListResult): string {
  const rows = result.keys.map((k: KeyInfo) => [
    k.kid,
    k.alg,
    k.status,
    k.created_at,
    k.age_days,
    k.retire_at ?? '-',
  ])
  return [
    renderTable(['KID', 'ALG', 'STATUS', 'CREATED', 'AGE (DAYS)', 'RETIRE AT'], rows),
    ...retiredLines(result.retired, result.removed),
  ].join('\n')
}

export function renderBackup(result: BackupResult): string {
  return [
    `Encrypted backup of ${result.files.length} files (${result.kids.length} keys) written to ${result.file}.`,
    'Keep the passphrase apart from the file: without it the backup cannot be restored.',
  ].join('\n')
}

export function renderRestored(result: RestoreResult): string {
  return [
    `Restored ${result.restored.length} files; current key ${result.current}.`,
    ...result.restored.map((p) => `  restored ${p}`),
    ...result.removed.map((p) => `  deleted  ${p}`),
  ].join('\n')
}
