import { PassThrough } from 'node:stream'
import { pino } from 'pino'
import { describe, expect, it } from 'vitest'
import { REDACTED_PATHS } from '../../src/http/app.js'
import { chooseLogFormat, formatLogLine, LEVEL_VALUES, PrettyLogStream } from '../../src/http/pretty-log.js'

/** 12:04:05 local time of a fixed instant, as the formatter prints it. */
const AT = new Date(2026, 0, 31, 12, 4, 5).getTime()

describe('formatLogLine', () => {
  it('prints time, level, message and the other fields as key=value on one line', () => {
    const line = JSON.stringify({
      level: 40,
      time: AT,
      pid: 1,
      hostname: 'h',
      component: 'infer',
      model: 'cls',
      msg: 'device auto: running cls:1 on the CPU',
    })
    expect(formatLogLine(line)).toBe(
      '12:04:05 WARN  device auto: running cls:1 on the CPU component=infer model=cls\n',
    )
  })

  it('prints a request as method, URL, status and time', () => {
    const line = JSON.stringify({
      level: 30,
      time: AT,
      reqId: 'r-1',
      req: { method: 'POST', url: '/v2/models/cls/infer' },
      res: { statusCode: 404 },
      responseTime: 1.5,
      code: 'MODEL_NOT_FOUND',
      msg: 'request completed',
    })
    expect(formatLogLine(line)).toBe(
      '12:04:05 INFO  request completed POST /v2/models/cls/infer 404 1.5ms reqId=r-1 code=MODEL_NOT_FOUND\n',
    )
  })

  it('shows an error message, and its stack at level error and above only', () => {
    const err = { type: 'Error', message: 'boom', stack: 'Error: boom\n    at f (x.js:1:1)' }
    expect(formatLogLine(JSON.stringify({ level: 40, time: AT, msg: 'retrying', err }))).toBe(
      '12:04:05 WARN  retrying error=boom\n',
    )
    expect(formatLogLine(JSON.stringify({ level: 50, time: AT, msg: 'failed', err }))).toBe(
      '12:04:05 ERROR failed error=boom\n    at f (x.js:1:1)\n',
    )
  })

  it('keeps a line one line: objects as JSON, long values cut, newlines folded', () => {
    const text = formatLogLine(
      JSON.stringify({ level: 30, time: AT, msg: 'm', big: 'x'.repeat(500), obj: { a: [1] }, nl: 'a\n  b' }),
    )
    expect(text.split('\n')).toHaveLength(2)
    expect(text).toContain(`big=${'x'.repeat(119)}…`)
    expect(text).toContain('obj={"a":[1]}')
    expect(text).toContain('nl=a b')
  })

  it('passes a line that is not JSON through, and names unknown levels', () => {
    expect(formatLogLine('plain text')).toBe('plain text\n')
    expect(formatLogLine('plain text\n')).toBe('plain text\n')
    expect(formatLogLine(JSON.stringify({ level: 35, time: AT, msg: 'm' }))).toBe('12:04:05 L35   m\n')
    expect(formatLogLine(JSON.stringify({ msg: 'no level' }))).toMatch(/^\d\d:\d\d:\d\d INFO {2}no level\n$/)
  })
})

describe('PrettyLogStream as a pino destination', () => {
  function capture() {
    const sink = new PassThrough()
    let text = ''
    sink.on('data', (chunk) => {
      text += chunk
    })
    return { sink, text: () => text }
  }

  it('prints human lines, keeps the redaction, and hides records below minLevel once raised', () => {
    const out = capture()
    const stream = new PrettyLogStream(out.sink)
    const logger = pino({ level: 'info', redact: { paths: REDACTED_PATHS, censor: '[redacted]' } }, stream)
    logger.info({ req: { method: 'GET', url: '/v2', headers: { authorization: 'Bearer hx_secret' } } }, 'hi')
    stream.minLevel = LEVEL_VALUES.warn
    logger.info('hidden now')
    logger.warn('still shown')
    const lines = out.text().trim().split('\n')
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/^\d\d:\d\d:\d\d INFO {2}hi GET \/v2$/)
    expect(lines[1]).toMatch(/WARN {2}still shown$/)
    expect(out.text()).not.toContain('hx_secret')
  })

  it('flushes through its sink, or at once when the sink cannot', async () => {
    let flushed = false
    const withFlush = new PrettyLogStream({
      write: () => true,
      flush: (cb) => {
        flushed = true
        cb?.()
      },
    })
    await new Promise<void>((resolve) => withFlush.flush(() => resolve()))
    expect(flushed).toBe(true)
    const without = new PrettyLogStream({ write: () => true })
    await new Promise<void>((resolve) => without.flush(() => resolve()))
    without.flush()
  })
})

describe('chooseLogFormat', () => {
  it('auto is pretty on a terminal and JSON elsewhere; an explicit format wins', () => {
    expect(chooseLogFormat('auto', true)).toBe('pretty')
    expect(chooseLogFormat('auto', false)).toBe('json')
    expect(chooseLogFormat('json', true)).toBe('json')
    expect(chooseLogFormat('pretty', false)).toBe('pretty')
  })
})
