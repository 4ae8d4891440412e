/**
 * Holds back generated text that could still become a stop string, and cuts the text at the first
 * stop string found. OpenAI's semantics: the stop string itself is not part of the output.
 */
export class StopStrings {
  private pending = ''

  constructor(private readonly stops: readonly string[]) {}

  /** Adds text; returns what is safe to emit and whether a stop string ended the sequence. */
  push(text: string): { text: string; stopped: boolean } {
    if (this.stops.length === 0) return { text, stopped: false }
    const all = this.pending + text
    let cut = -1
    for (const stop of this.stops) {
      const at = all.indexOf(stop)
      if (at >= 0 && (cut < 0 || at < cut)) cut = at
    }
    if (cut >= 0) {
      this.pending = ''
      return { text: all.slice(0, cut), stopped: true }
    }
    // The longest tail of the text that is the start of some stop string waits for more.
    let hold = 0
    for (const stop of this.stops)
      for (let n = Math.min(stop.length - 1, all.length); n > hold; n--)
        if (all.endsWith(stop.slice(0, n))) {
          hold = n
          break
        }
    this.pending = all.slice(all.length - hold)
    return { text: all.slice(0, all.length - hold), stopped: false }
  }

  /** What is held back when the sequence ends for another reason. */
  flush(): string {
    const rest = this.pending
    this.pending = ''
    return rest
  }
}
