/**
 * What the scheduler needs of a cancellation: the part of AbortSignal it uses, so an AbortSignal
 * still fits (callers and tests may pass one).
 */
export interface CancelSignal {
  readonly aborted: boolean
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void
  removeEventListener(type: 'abort', listener: () => void): void
}

/**
 * A one-shot cancellation for each request: an AbortController's job without EventTarget, whose
 * per-request signal, listener bookkeeping and event objects cost ~4 % of the daemon's CPU at full
 * load (bench/full-stack-vs-echo.js profile). Listeners run once, in order, on the first abort().
 */
export class RequestCancel implements CancelSignal {
  aborted = false
  private listeners: (() => void)[] = []

  addEventListener(_type: 'abort', listener: () => void): void {
    if (!this.aborted) this.listeners.push(listener)
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const at = this.listeners.indexOf(listener)
    if (at >= 0) this.listeners.splice(at, 1)
  }

  abort(): void {
    if (this.aborted) return
    this.aborted = true
    for (const listener of this.listeners.splice(0)) listener()
  }
}
