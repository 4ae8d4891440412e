import { createCipheriv, createDecipheriv, randomBytes, type ScryptOptions, scrypt } from 'node:crypto'
import { UserError } from '../../shared/errors.js'

/**
 * The encrypted backup format, version 1:
 *
 *   HELIX-KEYS-BACKUP\n
 *   {"version":1,"kdf":{"name":"scrypt","N":…,"r":…,"p":…,"salt":…},"cipher":{"name":"aes-256-gcm","iv":…}}\n
 *   AES-256-GCM ciphertext, then its 16-byte tag
 *
 * The key comes from the passphrase through scrypt with the parameters recorded in the header, so a
 * later version can raise them and still read old files. Both header lines are the GCM additional
 * authenticated data: changing any byte of the file (header included) makes decryption fail.
 */
export const BACKUP_MAGIC = 'HELIX-KEYS-BACKUP\n'
export const BACKUP_VERSION = 1

export interface ScryptParams {
  N: number
  r: number
  p: number
}

/** scrypt at N=2^17, r=8, p=1: OWASP's password-storage minimum, about a quarter second here. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 17, r: 8, p: 1 }

/** Upper bounds on header parameters, so a crafted file cannot make restore burn gigabytes of memory. */
const MAX_SCRYPT: ScryptParams = { N: 2 ** 20, r: 16, p: 4 }

const KEY_BYTES = 32
const IV_BYTES = 12
const TAG_BYTES = 16
const SALT_BYTES = 16
const MAX_HEADER_BYTES = 4096

interface BackupHeader {
  version: number
  kdf: ScryptParams & { name: 'scrypt'; salt: string }
  cipher: { name: 'aes-256-gcm'; iv: string }
}

function deriveKey(passphrase: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  // scrypt needs 128·N·r bytes; Node's default maxmem (32 MiB) is below that for N=2^17.
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r }
  return new Promise((resolve, reject) =>
    scrypt(passphrase.normalize('NFC'), salt, KEY_BYTES, options, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  )
}

export async function encryptBackup(
  plaintext: Buffer,
  passphrase: string,
  params: ScryptParams = DEFAULT_SCRYPT,
): Promise<Buffer> {
  const salt = randomBytes(SALT_BYTES)
  const iv = randomBytes(IV_BYTES)
  const header: BackupHeader = {
    version: BACKUP_VERSION,
    kdf: { name: 'scrypt', ...params, salt: salt.toString('base64') },
    cipher: { name: 'aes-256-gcm', iv: iv.toString('base64') },
  }
  const aad = Buffer.from(`${BACKUP_MAGIC}${JSON.stringify(header)}\n`, 'utf8')
  const cipher = createCipheriv('aes-256-gcm', await deriveKey(passphrase, salt, params), iv, {
    authTagLength: TAG_BYTES,
  })
  cipher.setAAD(aad)
  return Buffer.concat([aad, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()])
}

function decryptFailed(reason: string, cause?: unknown): UserError {
  return new UserError(
    'BACKUP_DECRYPT_FAILED',
    `Cannot decrypt the backup: ${reason}. Nothing was written.`,
    {
      hint: 'Check HELIX_BACKUP_PASSPHRASE (or the passphrase you typed); if it is right, the file was modified or damaged.',
      cause,
    },
  )
}

function isWithin(value: unknown, min: number, max: number): value is number {
  return Number.isInteger(value) && (value as number) >= min && (value as number) <= max
}

function parseHeader(line: string): BackupHeader {
  let header: BackupHeader
  try {
    header = JSON.parse(line) as BackupHeader
  } catch (err) {
    throw decryptFailed('its header is damaged', err)
  }
  const kdf = header?.kdf
  const cipher = header?.cipher
  const valid =
    header?.version === BACKUP_VERSION &&
    kdf?.name === 'scrypt' &&
    isWithin(kdf.N, 2, MAX_SCRYPT.N) &&
    (kdf.N & (kdf.N - 1)) === 0 &&
    isWithin(kdf.r, 1, MAX_SCRYPT.r) &&
    isWithin(kdf.p, 1, MAX_SCRYPT.p) &&
    typeof kdf.salt === 'string' &&
    cipher?.name === 'aes-256-gcm' &&
    typeof cipher.iv === 'string' &&
    Buffer.from(cipher.iv, 'base64').length === IV_BYTES
  if (!valid) throw decryptFailed('its header is damaged or of an unsupported version')
  return header
}

/** Decrypts a backup; any wrong passphrase or changed byte is BACKUP_DECRYPT_FAILED. */
export async function decryptBackup(data: Buffer, passphrase: string): Promise<Buffer> {
  const magic = Buffer.from(BACKUP_MAGIC, 'utf8')
  if (!data.subarray(0, magic.length).equals(magic)) {
    throw new UserError('BACKUP_INVALID', 'This file is not a helix keys backup.', {
      hint: 'Give the file written by `helix keys backup --out FILE`.',
    })
  }
  const end = data.indexOf(0x0a, magic.length)
  if (end < 0 || end > MAX_HEADER_BYTES) throw decryptFailed('its header is damaged')
  const header = parseHeader(data.subarray(magic.length, end).toString('utf8'))
  const aad = data.subarray(0, end + 1)
  const body = data.subarray(end + 1)
  if (body.length < TAG_BYTES) throw decryptFailed('the file is truncated')
  const key = await deriveKey(passphrase, Buffer.from(header.kdf.salt, 'base64'), header.kdf)
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(header.cipher.iv, 'base64'), {
      authTagLength: TAG_BYTES,
    })
    decipher.setAAD(aad)
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES))
    return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()])
  } catch (err) {
    throw decryptFailed('wrong passphrase, or the file was modified', err)
  }
}
