import { describe, expect, it } from 'vitest'
import {
  BACKUP_MAGIC,
  DEFAULT_SCRYPT,
  decryptBackup,
  encryptBackup,
} from '../../../src/provision/jwt/backup-archive.js'
import { HelixError } from '../../../src/shared/errors.js'

// Small scrypt cost keeps the many cases below fast; the default is exercised once.
const FAST = { N: 2 ** 10, r: 8, p: 1 }
interface Header {
  version: number
  kdf: { name: string; N: number; r: number; p: number; salt: string }
  cipher: { name: string; iv: string }
}
const secret = Buffer.from('{"files":{"a":"b"}}')

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(HelixError)
  expect((err as HelixError).exitCode).toBe(2)
  return (err as HelixError).code
}

function headerOf(data: Buffer): Header {
  const start = BACKUP_MAGIC.length
  return JSON.parse(data.subarray(start, data.indexOf(0x0a, start)).toString())
}

function withHeader(data: Buffer, edit: (h: Header) => void): Buffer {
  const start = BACKUP_MAGIC.length
  const end = data.indexOf(0x0a, start)
  const header = headerOf(data)
  edit(header)
  return Buffer.concat([Buffer.from(BACKUP_MAGIC), Buffer.from(JSON.stringify(header)), data.subarray(end)])
}

describe('backup archive (scrypt + AES-256-GCM)', () => {
  it('round-trips with the default parameters, recorded in a versioned header', async () => {
    const data = await encryptBackup(secret, 'correct horse battery')
    expect(data.subarray(0, BACKUP_MAGIC.length).toString()).toBe(BACKUP_MAGIC)
    const header = headerOf(data)
    expect(header).toMatchObject({
      version: 1,
      kdf: { name: 'scrypt', ...DEFAULT_SCRYPT },
      cipher: { name: 'aes-256-gcm' },
    })
    expect(DEFAULT_SCRYPT.N).toBeGreaterThanOrEqual(2 ** 17)
    expect(data.includes(secret)).toBe(false)
    expect(await decryptBackup(data, 'correct horse battery')).toEqual(secret)
  })

  it('uses a fresh salt and IV every time', async () => {
    const one = headerOf(await encryptBackup(secret, 'pw-pw-pw-pw', FAST))
    const two = headerOf(await encryptBackup(secret, 'pw-pw-pw-pw', FAST))
    expect(one.kdf.salt).not.toBe(two.kdf.salt)
    expect(one.cipher.iv).not.toBe(two.cipher.iv)
  })

  it('a wrong passphrase is BACKUP_DECRYPT_FAILED', async () => {
    const data = await encryptBackup(secret, 'right passphrase', FAST)
    expect(await codeOf(decryptBackup(data, 'wrong passphrase'))).toBe('BACKUP_DECRYPT_FAILED')
  })

  it('any flipped byte after the magic line is BACKUP_DECRYPT_FAILED', async () => {
    const data = await encryptBackup(secret, 'right passphrase', FAST)
    const saltAt = data.indexOf(Buffer.from(headerOf(data).kdf.salt)) + 2
    const positions = [saltAt, data.indexOf(0x0a, BACKUP_MAGIC.length) + 3, data.length - 20, data.length - 1]
    for (const at of positions) {
      const tampered = Buffer.from(data)
      tampered[at] ^= 0x01
      expect(await codeOf(decryptBackup(tampered, 'right passphrase'))).toBe('BACKUP_DECRYPT_FAILED')
    }
  })

  it('the header is authenticated: changing a parameter fails even with a valid header', async () => {
    const data = await encryptBackup(secret, 'right passphrase', FAST)
    const lowered = withHeader(data, (h) => {
      h.kdf.N = 2 ** 11
    })
    expect(await codeOf(decryptBackup(lowered, 'right passphrase'))).toBe('BACKUP_DECRYPT_FAILED')
  })

  it.each([
    ['an unknown version', (h: Header) => (h.version = 2)],
    ['N above the limit', (h: Header) => (h.kdf.N = 2 ** 24)],
    ['N not a power of two', (h: Header) => (h.kdf.N = 1000)],
    ['another cipher', (h: Header) => (h.cipher.name = 'aes-128-cbc')],
    ['a short IV', (h: Header) => (h.cipher.iv = 'AAAA')],
  ])('refuses a header with %s before running scrypt', async (_name, edit) => {
    const data = await encryptBackup(secret, 'right passphrase', FAST)
    const err = await decryptBackup(withHeader(data, edit), 'right passphrase').catch((e: HelixError) => e)
    expect((err as HelixError).code).toBe('BACKUP_DECRYPT_FAILED')
    expect((err as HelixError).message).toMatch(/unsupported version|damaged/)
  })

  it('names a file that is not a backup, and damaged or truncated ones', async () => {
    expect(await codeOf(decryptBackup(Buffer.from('hello world'), 'x'))).toBe('BACKUP_INVALID')
    expect(await codeOf(decryptBackup(Buffer.from(`${BACKUP_MAGIC}{not json\n0123456789abcdef`), 'x'))).toBe(
      'BACKUP_DECRYPT_FAILED',
    )
    expect(await codeOf(decryptBackup(Buffer.from(`${BACKUP_MAGIC}no newline`), 'x'))).toBe(
      'BACKUP_DECRYPT_FAILED',
    )
    const data = await encryptBackup(Buffer.alloc(0), 'right passphrase', FAST)
    const cut = data.subarray(0, data.length - 4)
    const err = await decryptBackup(cut, 'right passphrase').catch((e: HelixError) => e)
    expect((err as HelixError).message).toMatch(/truncated/)
  })
})
