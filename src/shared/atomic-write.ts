import { randomBytes } from 'node:crypto'
import { mkdir, open, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/** One file to be written as part of an all-or-nothing batch. */
export interface PlannedFile {
  path: string
  data: string | Uint8Array
  /** Unix permissions; private keys and secrets use 0o600. */
  mode?: number
}

export const PRIVATE_MODE = 0o600
export const PUBLIC_MODE = 0o644

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${randomBytes(6).toString('hex')}`)
}

async function writeTemp(file: PlannedFile): Promise<string> {
  await mkdir(dirname(file.path), { recursive: true })
  const temp = tempPathFor(file.path)
  // The mode is given at creation so a secret is never readable by others, not even for a moment.
  const handle = await open(temp, 'wx', file.mode ?? PUBLIC_MODE)
  try {
    await handle.writeFile(file.data)
    await handle.chmod(file.mode ?? PUBLIC_MODE)
    await handle.sync()
  } catch (err) {
    // This temp is not in commitFiles' cleanup list yet: remove the partial file here (disk full, quota).
    await handle.close().catch(() => undefined)
    await rm(temp, { force: true })
    throw err
  } finally {
    await handle.close().catch(() => undefined)
  }
  return temp
}

/**
 * Writes every file or none: all contents go to temp files beside their targets first (fsynced), and
 * only when all of them are written are they renamed into place. A failure or a signal before the
 * renames leaves the targets untouched; rename itself is atomic, so no target is ever half-written.
 */
export async function commitFiles(files: PlannedFile[]): Promise<void> {
  const temps: { temp: string; path: string }[] = []
  const cleanup = () => Promise.all(temps.map((t) => rm(t.temp, { force: true })))
  const onSignal = () => {
    void cleanup().finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    for (const file of files) temps.push({ temp: await writeTemp(file), path: file.path })
    for (const { temp, path } of temps) await rename(temp, path)
  } catch (err) {
    await cleanup()
    throw err
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

/** Writes one file atomically (temp file + rename). */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = PUBLIC_MODE,
): Promise<void> {
  await commitFiles([{ path, data, mode }])
}
