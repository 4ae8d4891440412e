import { randomBytes } from 'node:crypto'
import { hashSecret } from './secret-hash.js'

/** 256 bits: twice ASVS's 128-bit floor for session, refresh and e-mail tokens. */
export const OPAQUE_TOKEN_BYTES = 32

export interface OpaqueToken {
  /** Given to the client once (base64url). */
  token: string
  /** SHA-256 hex stored in the database. */
  hash: string
}

/** A fresh random token for refresh sessions, password resets and e-mail verification. */
export function generateOpaqueToken(bytes = OPAQUE_TOKEN_BYTES): OpaqueToken {
  const token = randomBytes(Math.max(16, bytes)).toString('base64url')
  return { token, hash: hashSecret(token) }
}

/** Cheap shape check before any lookup: base64url of at least 128 bits, bounded length. */
export function isWellFormedOpaqueToken(text: string): boolean {
  return /^[A-Za-z0-9_-]{22,128}$/.test(text)
}
