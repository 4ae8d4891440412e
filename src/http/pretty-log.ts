/**
 * Human log lines for a terminal: pino writes its JSON line to this destination, which prints one
 * short line instead (time, level, message, a few fields). Machines get the JSON (--log-format json,
 * or whenever the output is not a terminal), so nothing here has to be parseable.
 */

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
}

/** pino's numeric levels, for thresholds. */
export const LEVEL_VALUES = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const

/** pino's own fields and those shown in the line's head rather than as key=value. */
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'v', 'req', 'res', 'responseTime', 'err'])

/** A field value longer than this is cut: the line stays one line; the JSON format keeps it whole. */
const MAX_VALUE = 120

function clock(time: unknown): string {
  const date = typeof time === 'number' ? new Date(time) : new Date()
  return date.toTimeString().slice(0, 8)
}

function fieldText(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value)
  const oneLine = (text ?? String(value)).replace(/\s*\n\s*/g, ' ')
  return oneLine.length > MAX_VALUE ? `${oneLine.slice(0, MAX_VALUE - 1)}…` : oneLine
}

interface LogRecord {
  level?: number
  time?: number
  msg?: string
  req?: { method?: string; url?: string }
  res?: { statusCode?: number }
  responseTime?: number
  err?: { message?: string; stack?: string }
  [field: string]: unknown
}

/**
 * One pino JSON line as one human line (plus the stack of an error at level error and above):
 * `12:04:05 WARN  message key=value …`, and for a request `… POST /v2/models/cls/infer 503 4.1ms`.
 * A line that is not JSON passes through unchanged.
 */
export function formatLogLine(line: string): string {
  let record: LogRecord
  try {
    record = JSON.parse(line) as LogRecord
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`
  }
  const level = LEVEL_NAMES[record.level ?? 30] ?? `L${record.level}`
  const parts = [clock(record.time), level.padEnd(5), record.msg ?? '']
  if (record.req) {
    const status = record.res?.statusCode
    const ms = record.responseTime === undefined ? '' : ` ${record.responseTime}ms`
    parts.push(`${record.req.method ?? ''} ${record.req.url ?? ''}${status ? ` ${status}` : ''}${ms}`)
  }
  for (const [key, value] of Object.entries(record)) {
    if (!HIDDEN.has(key) && value !== undefined) parts.push(`${key}=${fieldText(value)}`)
  }
  if (record.err?.message) parts.push(`error=${fieldText(record.err.message)}`)
  let text = parts.filter((p) => p !== '').join(' ')
  if (record.err?.stack && (record.level ?? 0) >= LEVEL_VALUES.error) {
    const frames = record.err.stack.split('\n').slice(1)
    if (frames.length) text += `\n${frames.join('\n')}`
  }
  return `${text}\n`
}

/** Where the formatted lines go: a pino destination (SonicBoom) or any writable stream. */
export interface LineSink {
  write(text: string): unknown
  flush?(callback?: (err?: Error) => void): void
}

/**
 * A pino destination that prints formatted lines. `minLevel` hides records below it and may be
 * raised while running (`helix up` shows only warnings once its summary is printed).
 */
export class PrettyLogStream {
  minLevel: number

  constructor(
    private readonly sink: LineSink,
    minLevel = 0,
  ) {
    this.minLevel = minLevel
  }

  write(line: string): void {
    if (this.minLevel > 0) {
      const level = /"level":(\d+)/.exec(line)
      if (level && Number(level[1]) < this.minLevel) return
    }
    this.sink.write(formatLogLine(line))
  }

  /** pino's logger.flush() calls this. */
  flush(callback?: (err?: Error) => void): void {
    if (this.sink.flush) this.sink.flush(callback)
    else callback?.()
  }
}

/** auto means pretty for a terminal and JSON for everything else (files, pipes, log shippers). */
export function chooseLogFormat(format: 'auto' | 'pretty' | 'json', isTerminal: boolean): 'pretty' | 'json' {
  if (format === 'auto') return isTerminal ? 'pretty' : 'json'
  return format
}
