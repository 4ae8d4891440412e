import { crc32 } from 'node:zlib'
import { encodeBase62, randomBase62 } from './base62.js'
import { hashSecret } from './secret-hash.js'

/**
 * API keys look like GitHub's tokens: `hx_` + 30 random base62 characters (≈ 178 bits, DESIGN asks
 * ≥ 128) + 6 base62 characters of CRC32 over prefix and body. Secret scanners recognise the prefix and a
 * typo fails the checksum without a database lookup.
 */
export const API_KEY_PREFIX = 'hx_'
export const API_KEY_RANDOM_LENGTH = 30
export const API_KEY_CHECKSUM_LENGTH = 6
export const API_KEY_LENGTH = API_KEY_PREFIX.length + API_KEY_RANDOM_LENGTH + API_KEY_CHECKSUM_LENGTH

const API_KEY_PATTERN = new RegExp(
  `^${API_KEY_PREFIX}[0-9A-Za-z]{${API_KEY_RANDOM_LENGTH + API_KEY_CHECKSUM_LENGTH}}$`,
)

function checksumOf(prefixAndBody: string): string {
  // CRC32 < 2^32 < 62^6, so six characters always suffice.
  return encodeBase62(crc32(prefixAndBody), API_KEY_CHECKSUM_LENGTH)
}

export interface NewApiKey {
  /** The full secret, shown to the user once and never stored. */
  key: string
  /** SHA-256 hex of the key: what the database keeps. */
  hash: string
  /** First characters, safe to display (`hx_` + 4). */
  prefix: string
  /** Last four characters, safe to display. */
  last4: string
}

/** Display parts of a key: enough to tell keys apart, far too little to guess one. */
export function displayParts(key: string): { prefix: string; last4: string } {
  return { prefix: key.slice(0, API_KEY_PREFIX.length + 4), last4: key.slice(-4) }
}

export function generateApiKey(): NewApiKey {
  const body = `${API_KEY_PREFIX}${randomBase62(API_KEY_RANDOM_LENGTH)}`
  const key = `${body}${checksumOf(body)}`
  return { key, hash: hashSecret(key), ...displayParts(key) }
}

/** True when the text has the shape of a helix key (prefix, length, alphabet); says nothing of the checksum. */
export function looksLikeApiKey(text: string): boolean {
  return text.startsWith(API_KEY_PREFIX)
}

/** True when `text` is a well-formed key with a correct checksum. Costs no database lookup. */
export function isValidApiKey(text: string): boolean {
  if (text.length !== API_KEY_LENGTH || !API_KEY_PATTERN.test(text)) return false
  const body = text.slice(0, -API_KEY_CHECKSUM_LENGTH)
  return checksumOf(body) === text.slice(-API_KEY_CHECKSUM_LENGTH)
}
