import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import type { RealtimeSession } from './session.js'

/** 256 bits from the CSPRNG, base64url (43 characters). */
function newToken(): string {
  return randomBytes(32).toString('base64url')
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest()
}

interface Entry {
  session: RealtimeSession
  /** SHA-256 of the one resume token that works now; the token itself is never kept. */
  tokenHash: Buffer
  /** Set while no socket is attached: the end of the grace period. */
  graceTimer?: NodeJS.Timeout
  detachedAt?: number
}

export interface ResumeStoreOptions {
  /** How long a detached session waits for a resume before it is destroyed. */
  graceMs: number
  /** Detached sessions one owner may have; the longest-waiting is destroyed past it. */
  maxDetachedPerOwner: number
}

/**
 * The live realtime sessions of one daemon, and their resume tokens: single-use secrets (a fresh one
 * is handed out on each resume), stored as hashes and compared in constant time. A session without a
 * socket lives for the grace period; then its requests are cancelled and its frames freed.
 */
export class ResumeStore {
  private readonly entries = new Map<string, Entry>()

  constructor(private readonly options: ResumeStoreOptions) {}

  get size(): number {
    return this.entries.size
  }

  /** Registers a session made by `make` (given its new id); returns it with its first resume token. */
  create(make: (id: string) => RealtimeSession): { session: RealtimeSession; token: string } {
    const session = make(randomUUID())
    const token = newToken()
    this.entries.set(session.id, { session, tokenHash: digest(token) })
    return { session, token }
  }

  /**
   * The session a resume names, when its token is the current one and `owner` is the session's; the
   * token is spent and a new one returned. Undefined otherwise, the same for every reason.
   */
  claim(
    sessionId: string,
    token: string,
    owner: string,
  ): { session: RealtimeSession; token: string } | undefined {
    const entry = this.entries.get(sessionId)
    // The digest is computed and compared whether or not the session exists: same work either way.
    const given = digest(token)
    const matches = timingSafeEqual(given, entry?.tokenHash ?? Buffer.alloc(given.length))
    if (!entry || !matches || entry.session.owner !== owner) return undefined
    const next = newToken()
    entry.tokenHash = digest(next)
    this.clearGrace(entry)
    return { session: entry.session, token: next }
  }

  /** The session lost its socket: it waits for a resume for the grace period (at once destroyed when empty). */
  detached(session: RealtimeSession): void {
    const entry = this.entries.get(session.id)
    if (!entry) return
    if (session.size === 0 || this.options.graceMs <= 0) {
      this.remove(session)
      return
    }
    this.clearGrace(entry)
    entry.detachedAt = Date.now()
    entry.graceTimer = setTimeout(() => this.remove(session), this.options.graceMs)
    entry.graceTimer.unref()
    this.boundDetached(session.owner)
  }

  /** Destroys a session: its requests are cancelled and nothing can resume it. */
  remove(session: RealtimeSession): void {
    const entry = this.entries.get(session.id)
    if (!entry || entry.session !== session) return
    this.clearGrace(entry)
    this.entries.delete(session.id)
    session.destroy()
  }

  close(): void {
    for (const { session } of [...this.entries.values()]) this.remove(session)
  }

  private clearGrace(entry: Entry): void {
    if (entry.graceTimer) clearTimeout(entry.graceTimer)
    entry.graceTimer = undefined
    entry.detachedAt = undefined
  }

  private boundDetached(owner: string): void {
    const waiting = [...this.entries.values()]
      .filter((e) => e.session.owner === owner && e.detachedAt !== undefined)
      .sort((a, b) => (a.detachedAt as number) - (b.detachedAt as number))
    for (const entry of waiting.slice(0, Math.max(0, waiting.length - this.options.maxDetachedPerOwner)))
      this.remove(entry.session)
  }
}
