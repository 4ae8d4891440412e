/**
 * At most `limit` model loads at once: a repository of hundreds of models loads concurrently
 * without every session opening (and reading its file) at the same moment. Waiters go in order.
 */
export class LoadLimiter {
  private running = 0
  private readonly waiting: (() => void)[] = []

  constructor(readonly limit: number) {}

  /** Runs `task` once fewer than `limit` others run. */
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve))
    else this.running++
    try {
      return await task()
    } finally {
      const next = this.waiting.shift()
      if (next) next()
      else this.running--
    }
  }
}
