/**
 * Reads a Server-Sent Events body (OpenAI chat completions streaming) incrementally and keeps the
 * arrival time of each event that carries generated content. `data: [DONE]`, role-only deltas and the
 * usage chunk are not tokens.
 */
export class SseTokenParser {
  readonly arrivals: number[] = []
  private pending = ''

  push(chunk: Buffer, now: number): void {
    this.pending += chunk.toString('utf8')
    // Events end with a blank line; keep the unfinished tail for the next chunk.
    const events = this.pending.split(/\r?\n\r?\n/)
    this.pending = events.pop() ?? ''
    for (const event of events) if (carriesContent(event)) this.arrivals.push(now)
  }

  finish(now: number): number[] {
    if (carriesContent(this.pending)) this.arrivals.push(now)
    this.pending = ''
    return this.arrivals
  }
}

function carriesContent(event: string): boolean {
  const data = event
    .split(/\r?\n/)
    .filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(5).trim())
    .join('\n')
  if (data === '' || data === '[DONE]') return false
  try {
    const parsed = JSON.parse(data) as { choices?: { delta?: { content?: string }; text?: string }[] }
    const choice = parsed.choices?.[0]
    return Boolean(choice?.delta?.content || choice?.text)
  } catch {
    // Not JSON: a plain-text event stream, where every data event is a token.
    return true
  }
}
