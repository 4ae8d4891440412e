import type { StepProgress } from '../run-step.js'

/**
 * The live line shown on a TTY while a step runs, redrawn in place on stderr
 * (never on stdout, which belongs to the summary or --json).
 */
export function formatProgress(p: StepProgress, totalMs?: number): string {
  const seconds = p.elapsedMs / 1000
  const rate = seconds > 0 ? p.successes / seconds : 0
  const clock = totalMs ? `${seconds.toFixed(1)}s/${(totalMs / 1000).toFixed(0)}s` : `${seconds.toFixed(1)}s`
  return `${p.label.padEnd(10)} ${clock.padEnd(11)} ${String(p.successes).padStart(8)} ok  ${rate.toFixed(0).padStart(7)} req/s  p99 ${p.p99.toFixed(1)} ms  errors ${p.errors}`
}

export interface ProgressWriter {
  update(p: StepProgress): void
  done(): void
}

/** Draws progress on a TTY stream, or nothing when the stream is not a terminal. */
export function progressWriter(stream: NodeJS.WriteStream, totalMs?: number): ProgressWriter {
  if (!stream.isTTY) return { update: () => {}, done: () => {} }
  let drawn = false
  return {
    update(p) {
      stream.write(`\r\x1b[2K${formatProgress(p, totalMs)}`)
      drawn = true
    },
    done() {
      if (drawn) stream.write('\r\x1b[2K')
      drawn = false
    },
  }
}
