import { writeSync } from 'node:fs'
import { pino } from 'pino'

/** Log lines held while the output does not take them; beyond this, new lines are dropped (counted). */
export const MAX_PENDING_LOG_BYTES = 16 * 1024 * 1024

type Destination = ReturnType<typeof pino.destination>

/**
 * The daemon's log output: pino's asynchronous destination on a file descriptor, made safe for an
 * output that fails (a full disk, ENOSPC; an I/O error). Left alone, the destination's write error
 * is an uncaught 'error' event, and its flush at exit retries a failed write forever, 100 ms apart:
 * the daemon neither serves nor exits. Here a failed write is counted and said once on stderr; the
 * lines wait (at most MAX_PENDING_LOG_BYTES, newer ones dropped and counted beyond that) and are
 * written again with the next line, so the output recovers by itself once there is room; the exit
 * flush is skipped while the output fails, and the flush at shutdown is bounded.
 */
export class LogOutput {
  readonly stream: Destination
  /** Told of each failed write and of lines dropped (the daemon's metrics). */
  onWriteError: (() => void) | undefined
  onDropped: ((lines: number) => void) | undefined
  /** Writes that failed (each retried with the next line). */
  writeErrors = 0
  /** Lines dropped because MAX_PENDING_LOG_BYTES were already waiting. */
  droppedLines = 0
  private failing: NodeJS.ErrnoException | undefined
  /** pino's own listener re-emits a write error once: the same error object is counted once. */
  private lastError: unknown

  constructor(private readonly fd: number) {
    this.stream = pino.destination({ dest: fd, sync: false, maxLength: MAX_PENDING_LOG_BYTES })
    this.stream.on('error', (err: NodeJS.ErrnoException) => this.failed(err))
    this.stream.on('drop', (data: string | Buffer) => {
      const lines = countLines(data)
      this.droppedLines += lines
      this.onDropped?.(lines)
    })
    this.stream.on('write', () => this.recovered())
    const flushSync = this.stream.flushSync.bind(this.stream)
    this.stream.flushSync = () => {
      if (this.failing) return
      flushSync()
    }
  }

  /** Writes what is waiting; resolves once written, on a write error, or after `timeoutMs`. */
  flush(timeoutMs: number): Promise<void> {
    if (this.failing) return Promise.resolve()
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs)
      timer.unref()
      this.stream.flush(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  private failed(err: NodeJS.ErrnoException): void {
    if (err === this.lastError) return
    this.lastError = err
    this.writeErrors++
    this.onWriteError?.()
    if (this.failing) return
    this.failing = err
    // stderr may sit on the same full disk: a best effort, never a second failure.
    tellStderr(
      `helix: writing the log (fd ${this.fd}) failed: ${err.code ?? err.message}. The daemon keeps serving; log lines wait (up to ${MAX_PENDING_LOG_BYTES / 2 ** 20} MiB, newer ones dropped beyond it) and are written once the output takes them again.\n`,
    )
  }

  private recovered(): void {
    if (!this.failing) return
    this.failing = undefined
    tellStderr(
      `helix: the log output works again (${this.writeErrors} failed writes, ${this.droppedLines} lines dropped).\n`,
    )
  }
}

function countLines(data: string | Buffer): number {
  let lines = 0
  const text = typeof data === 'string' ? data : data.toString('utf8')
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++
  return Math.max(1, lines)
}

function tellStderr(text: string): void {
  try {
    writeSync(2, text)
  } catch {
    // Nowhere left to say it.
  }
}
