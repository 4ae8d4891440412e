import { SMTPServer } from 'smtp-server'

export interface ReceivedMail {
  from: string
  to: string[]
  raw: string
}

export interface SmtpSink {
  url: string
  received: ReceivedMail[]
  /** Resolves with the next message addressed to `to` (already received or still to come). */
  next(to: string, timeoutMs?: number): Promise<ReceivedMail>
  stop(): Promise<void>
}

/** A real local SMTP server (smtp-server) that keeps every message it receives. */
export async function startSmtpSink(): Promise<SmtpSink> {
  const received: ReceivedMail[] = []
  const waiters: Array<() => void> = []
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      stream.on('end', () => {
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks).toString('utf8'),
        })
        for (const wake of waiters.splice(0)) wake()
        callback()
      })
    },
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.server.address() as { port: number }
  const find = (to: string, seen: number) => received.slice(seen).find((m) => m.to.includes(to))
  return {
    url: `smtp://127.0.0.1:${port}`,
    received,
    async next(to, timeoutMs = 10_000) {
      const start = 0
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const hit = find(to, start)
        if (hit) {
          received.splice(received.indexOf(hit), 1)
          return hit
        }
        if (Date.now() > deadline) throw new Error(`no mail for ${to} within ${timeoutMs} ms`)
        await new Promise<void>((r) => {
          waiters.push(r)
          setTimeout(r, 100)
        })
      }
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

/** The decoded text of a mail (quoted-printable soft breaks and escapes undone). */
export function textOf(raw: string): string {
  return raw
    .replace(/=\r?\n/g, '')
    .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
}

/** The token printed in a helix mail (the indented base64url line). */
export function tokenFrom(raw: string): string {
  const body = textOf(raw)
  const match = /^ {2}([A-Za-z0-9_-]{40,})\s*$/m.exec(body)
  if (!match) throw new Error(`no token in mail:\n${raw}`)
  return match[1]
}
