import { readdir, readFile, rm } from 'node:fs/promises'
import { resolve } from 'node:path'
import {
  commitFiles,
  type PlannedFile,
  PRIVATE_MODE,
  PUBLIC_MODE,
  writeFileAtomic,
} from '../../shared/atomic-write.js'
import { type HelixError, UserError } from '../../shared/errors.js'
import { exists, type HelixHome } from '../../shared/home.js'
import { keyMatchesAlgorithm, parsePrivatePem, publicJwkOf } from '../../state/jwt/key-algorithms.js'
import { currentKid, publishedKids } from '../../state/jwt/key-set.js'
import {
  inHome,
  JWKS_FILE,
  KEY_SET_FILE,
  keySetPath,
  keysCorrupt,
  keysMissing,
  PRIVATE_KEY_SUFFIX,
  parseKeySet,
  privateKeyPath,
  readKeySet,
} from '../../state/jwt/key-store.js'
import { DEFAULT_SCRYPT, decryptBackup, encryptBackup, type ScryptParams } from './backup-archive.js'

/** The decrypted content of a backup: file names inside keys/ and their bytes (base64). */
interface KeysArchive {
  version: 1
  created_at: string
  files: Record<string, string>
}

/** Short passphrases fall to offline guessing however slow the KDF; 8 matches ASVS's password minimum. */
export const MIN_PASSPHRASE_LENGTH = 8

export interface BackupResult {
  file: string
  kids: string[]
  files: string[]
  kdf: ScryptParams & { name: 'scrypt' }
}

export interface RestoreResult {
  current: string
  restored: string[]
  removed: string[]
}

const PEM_NAME = new RegExp(`^([A-Za-z0-9_-]{43})${PRIVATE_KEY_SUFFIX.replaceAll('.', '\\.')}$`)

async function storedPemKids(home: HelixHome): Promise<string[]> {
  const names = await readdir(home.path('keys')).catch(() => [] as string[])
  return names.flatMap((name) => PEM_NAME.exec(name)?.[1] ?? [])
}

/** `helix keys backup`: keys.json, jwks.json and the private keys of published kids, encrypted. */
export async function backupKeys(
  home: HelixHome,
  options: { out: string; passphrase: string; force?: boolean; scrypt?: ScryptParams },
): Promise<BackupResult> {
  if (options.passphrase.length < MIN_PASSPHRASE_LENGTH) {
    throw new UserError(
      'PASSPHRASE_TOO_SHORT',
      `The backup passphrase must have at least ${MIN_PASSPHRASE_LENGTH} characters.`,
      {
        hint: 'Use a long passphrase (several words) and keep it apart from the backup.',
      },
    )
  }
  const set = await readKeySet(home)
  if (!set || !currentKid(set)) throw keysMissing(home)
  const out = resolve(options.out)
  if (!options.force && (await exists(out))) {
    throw new UserError('BACKUP_EXISTS', `${out} already exists.`, {
      hint: 'Choose another --out, or add --force to replace it.',
    })
  }
  const kids = publishedKids(set)
  const names = [KEY_SET_FILE, JWKS_FILE, ...kids.map((kid) => `${kid}${PRIVATE_KEY_SUFFIX}`)]
  const files: Record<string, string> = {}
  for (const name of names) {
    try {
      files[name] = (await readFile(home.path('keys', name))).toString('base64')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      throw keysCorrupt(home, `keys/${name} is missing, so the set cannot be backed up`, err)
    }
  }
  const archive: KeysArchive = { version: 1, created_at: new Date().toISOString(), files }
  const scrypt = options.scrypt ?? DEFAULT_SCRYPT
  const data = await encryptBackup(Buffer.from(JSON.stringify(archive), 'utf8'), options.passphrase, scrypt)
  // Encrypted, but still key material: readable by the owner only.
  await writeFileAtomic(out, data, PRIVATE_MODE)
  return { file: out, kids, files: names.map((n) => `keys/${n}`), kdf: { name: 'scrypt', ...scrypt } }
}

function invalidBackup(what: string, cause?: unknown): UserError {
  return new UserError(
    'BACKUP_INVALID',
    `The backup decrypted but its content is not a valid key set: ${what}. Nothing was written.`,
    {
      hint: 'Use a backup written by `helix keys backup`.',
      cause,
    },
  )
}

/** Checks a decrypted archive completely (names, schema, every private key against its kid) before any write. */
async function validateArchive(
  home: HelixHome,
  plaintext: Buffer,
): Promise<{ files: PlannedFile[]; current: string }> {
  let archive: KeysArchive
  try {
    archive = JSON.parse(plaintext.toString('utf8')) as KeysArchive
  } catch (err) {
    throw invalidBackup('not JSON', err)
  }
  if (archive?.version !== 1 || typeof archive.files !== 'object' || archive.files === null)
    throw invalidBackup('unknown layout')
  const contents = new Map(
    Object.entries(archive.files).map(([name, b64]) => [name, Buffer.from(String(b64), 'base64')]),
  )
  for (const name of contents.keys()) {
    // Names become paths: only the three kinds of file keys/ holds, never a path with separators.
    if (name !== KEY_SET_FILE && name !== JWKS_FILE && !PEM_NAME.test(name))
      throw invalidBackup(`unexpected file '${name}'`)
  }
  const setText = contents.get(KEY_SET_FILE)
  if (!setText || !contents.has(JWKS_FILE)) throw invalidBackup(`${KEY_SET_FILE} or ${JWKS_FILE} is missing`)
  let set: ReturnType<typeof parseKeySet>
  try {
    set = parseKeySet(home, setText.toString('utf8'))
  } catch (err) {
    throw invalidBackup((err as HelixError).message, err)
  }
  const current = currentKid(set)
  if (!current) throw invalidBackup('it has no current key')
  for (const kid of publishedKids(set)) {
    const pem = contents.get(`${kid}${PRIVATE_KEY_SUFFIX}`)
    if (!pem) throw invalidBackup(`the private key of ${kid} is missing`)
    let matches = false
    try {
      const key = parsePrivatePem(pem.toString('utf8'))
      matches =
        keyMatchesAlgorithm(key, set.keys[kid].alg) && (await publicJwkOf(key, set.keys[kid].alg)).kid === kid
    } catch (err) {
      throw invalidBackup(`the private key of ${kid} cannot be parsed`, err)
    }
    if (!matches) throw invalidBackup(`the private key stored for ${kid} is another key`)
  }
  // Private keys first and keys.json (the source of truth) last, as saveKeySet orders them.
  const rank = (name: string) => (PEM_NAME.test(name) ? 0 : name === JWKS_FILE ? 1 : 2)
  const files: PlannedFile[] = [...contents.entries()]
    .sort(([a], [b]) => rank(a) - rank(b))
    .map(([name, data]) => ({
      path: home.path('keys', name),
      data,
      mode: PEM_NAME.test(name) ? PRIVATE_MODE : PUBLIC_MODE,
    }))
  return { files, current }
}

/**
 * `helix keys restore`: decrypts and checks the whole backup first, then writes every file in one
 * all-or-nothing commit. Existing keys are replaced only with `force`; private keys that the backup
 * does not hold are then deleted, so keys/ ends up exactly as it was backed up.
 */
export async function restoreKeys(
  home: HelixHome,
  options: { file: string; passphrase: string; force?: boolean },
): Promise<RestoreResult> {
  const file = resolve(options.file)
  let data: Buffer
  try {
    data = await readFile(file)
  } catch (err) {
    throw new UserError(
      'BACKUP_NOT_FOUND',
      `Cannot read the backup ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}.`,
      {
        hint: 'Give the path of a file written by `helix keys backup --out FILE`.',
        cause: err,
      },
    )
  }
  const { files, current } = await validateArchive(home, await decryptBackup(data, options.passphrase))
  const existing = await storedPemKids(home)
  if (!options.force && ((await exists(keySetPath(home))) || existing.length > 0)) {
    throw new UserError(
      'KEYS_EXIST',
      `JWT keys already exist in ${home.path('keys')}; restoring would replace them.`,
      {
        hint: 'Add --force to replace the current keys with the backup (back them up first if you may need them).',
      },
    )
  }
  await commitFiles(files)
  const restored = new Set(files.map((f) => f.path))
  const removed: string[] = []
  for (const kid of existing) {
    const path = privateKeyPath(home, kid)
    if (!restored.has(path)) {
      await rm(path, { force: true })
      removed.push(inHome(home, path))
    }
  }
  return { current, restored: files.map((f) => inHome(home, f.path)), removed }
}
