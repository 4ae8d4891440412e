import { randomUUID } from 'node:crypto'
import { mkdir, readdir, readFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { PRIVATE_MODE, writeFileAtomic } from '../../shared/atomic-write.js'
import type { RequestLogEntry } from '../../state/db/repositories/request-log.js'

/** Usage counters of one API key in one quarter hour (UsageRecorder's unit of counting). */
export interface KeyCounters {
  keyId: string
  /** Start of the quarter hour the requests were recorded in (ms since the epoch). */
  slot: number
  requests: number
  errors: number
  items: number
}

/** What a daemon still held when it stopped with the database unreachable. */
export interface SpooledUsage {
  /** Recorded in usage_spool_replays with the rows, so the batch is written once. */
  id: string
  counters: KeyCounters[]
  requests: RequestLogEntry[]
}

const SUFFIX = '.json'

/** The spool's folder under the helix directory's data/. */
export const USAGE_SPOOL_DIR = 'usage-spool'

/**
 * Files in the helix directory's data/usage-spool/ (0600: request-log rows name users and client
 * addresses), one per daemon that stopped during a database outage, written by the next to start.
 */
export class UsageSpool {
  constructor(readonly dir: string) {}

  /** Saves a batch; returns the file's path. */
  async save(counters: KeyCounters[], requests: RequestLogEntry[]): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 })
    const batch: SpooledUsage = { id: randomUUID(), counters, requests }
    // The time first, so the files sort in the order the daemons stopped.
    const path = join(this.dir, `${new Date().toISOString().replace(/[:.]/g, '-')}-${batch.id}${SUFFIX}`)
    await writeFileAtomic(path, JSON.stringify(batch), PRIVATE_MODE)
    return path
  }

  /** The saved batches, oldest first. */
  async files(): Promise<string[]> {
    let names: string[]
    try {
      names = await readdir(this.dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    return names
      .filter((n) => n.endsWith(SUFFIX))
      .sort()
      .map((n) => join(this.dir, n))
  }

  async read(path: string): Promise<SpooledUsage> {
    const batch = JSON.parse(await readFile(path, 'utf8')) as SpooledUsage
    if (typeof batch.id !== 'string' || !Array.isArray(batch.counters) || !Array.isArray(batch.requests))
      throw new Error('not a usage spool batch')
    for (const request of batch.requests) if (request.at) request.at = new Date(request.at)
    return batch
  }

  async remove(path: string): Promise<void> {
    await rm(path, { force: true })
  }

  /** Moves a batch that cannot be written aside (…json.failed), so it does not block the ones after it. */
  async setAside(path: string): Promise<string> {
    const aside = `${path}.failed`
    await rename(path, aside)
    return aside
  }
}
