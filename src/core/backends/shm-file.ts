import { closeSync, existsSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'

/**
 * A file in /dev/shm (tmpfs: memory two processes both reach) through which a worker process and the
 * daemon pass tensors' bytes: one pwrite by the writer and one pread by the reader, where a pipe
 * would copy them through the kernel in pipe-sized pieces. The file is unlinked once the worker has
 * opened it, so nothing is left behind when either process dies; its mode is 0600.
 */

/** Where the files live: tmpfs on Linux. */
export const SHM_DIR = '/dev/shm'
/** Tensors start at offsets aligned for every datatype (and for cache lines). */
const SHM_ALIGN = 64
let created = 0

export interface ShmFile {
  path: string
  fd: number
}

/** Whether this machine has a /dev/shm. */
export function shmAvailable(): boolean {
  return existsSync(SHM_DIR)
}

/** The next offset at or after `offset` where a tensor may start. */
export function alignShm(offset: number): number {
  return Math.ceil(offset / SHM_ALIGN) * SHM_ALIGN
}

/** A new, empty file in /dev/shm that only this user can read (0600); `prefix` names its owner. */
export function createShmFile(prefix: string): ShmFile {
  const path = join(SHM_DIR, `${prefix}-${process.pid}-${++created}`)
  return { path, fd: openSync(path, 'wx+', 0o600) }
}

/** Removes the file's name (the processes that opened it keep it until they close it). */
export function unlinkShm(file: ShmFile): void {
  try {
    unlinkSync(file.path)
  } catch {
    // Already unlinked.
  }
}

export function closeShm(file: ShmFile): void {
  unlinkShm(file)
  try {
    closeSync(file.fd)
  } catch {
    // Already closed.
  }
}

/** Writes all of `bytes` at `position`; a full /dev/shm throws ENOSPC (errors keep their code). */
export function writeAll(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, position + done)
}

/** Fills `bytes` from `position`; false when the file ends first. */
export function readAll(fd: number, bytes: Uint8Array, position: number): boolean {
  let done = 0
  while (done < bytes.length) {
    const read = readSync(fd, bytes, done, bytes.length - done, position + done)
    if (read === 0) return false
    done += read
  }
  return true
}

/**
 * One user of a shm file at a time: a request's inputs and outputs share the file, so the next
 * request writes its inputs only once the previous one's outputs are read.
 */
export class ShmLock {
  private busy = false
  private readonly waiting: (() => void)[] = []

  async exclusive<T>(work: () => Promise<T>): Promise<T> {
    if (this.busy) await new Promise<void>((resolve) => this.waiting.push(resolve))
    else this.busy = true
    try {
      return await work()
    } finally {
      const next = this.waiting.shift()
      if (next) next()
      else this.busy = false
    }
  }
}
