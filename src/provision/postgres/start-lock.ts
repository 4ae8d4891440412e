import { randomBytes } from 'node:crypto'
import { link, readFile, rm, writeFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { Failure } from '../../shared/errors.js'
import type { HelixHome } from '../../shared/home.js'

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Serialises `db start` / `db stop` on one helix directory across processes (`helix up` and a
 * `helix db start` at the same moment would otherwise both run initdb). The lock file holds the
 * owner's pid and appears atomically with it (link of a finished temp file), so a lock left by a
 * crashed process is recognised as stale and taken over.
 */
export async function withStartLock<T>(
  home: HelixHome,
  fn: () => Promise<T>,
  timeoutMs = 120_000,
): Promise<T> {
  await home.ensureDir('data')
  const lock = home.path('data', 'postgres.lock')
  const temp = `${lock}.${process.pid}-${randomBytes(4).toString('hex')}`
  await writeFile(temp, String(process.pid), { mode: 0o600 })
  const deadline = Date.now() + timeoutMs
  try {
    while (true) {
      try {
        await link(temp, lock)
        break
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const holder = Number(await readFile(lock, 'utf8').catch(() => '0'))
      if (!holder || !alive(holder)) {
        await rm(lock, { force: true })
        continue
      }
      if (Date.now() > deadline) {
        throw new Failure(
          'DB_BUSY',
          `Another helix process (pid ${holder}) is starting or stopping this database.`,
          {
            hint: `Wait for it to finish; if no such process runs, delete ${lock}.`,
          },
        )
      }
      await sleep(100)
    }
  } finally {
    await rm(temp, { force: true })
  }
  try {
    return await fn()
  } finally {
    await rm(lock, { force: true })
  }
}
