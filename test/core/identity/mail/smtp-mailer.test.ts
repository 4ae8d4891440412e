import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resetPasswordMessage, verifyEmailMessage } from '../../../../src/core/identity/mail/auth-mail.js'
import { SmtpMailer } from '../../../../src/core/identity/mail/smtp-mailer.js'
import { type SmtpSink, startSmtpSink, textOf, tokenFrom } from './smtp-sink.js'

describe('SMTP mailer (real smtp-server)', () => {
  let sink: SmtpSink
  beforeAll(async () => {
    sink = await startSmtpSink()
  })
  afterAll(async () => {
    await sink?.stop()
  })

  it('delivers a reset mail with a link and the token through SMTP', async () => {
    const mailer = new SmtpMailer(sink.url, 'helix@example.test')
    const token = 'A'.repeat(43)
    await mailer.send(
      resetPasswordMessage({
        to: 'ada@example.test',
        token,
        publicUrl: 'https://api.example.test/',
        validMinutes: 30,
      }),
    )
    const mail = await sink.next('ada@example.test')
    expect(mail.from).toBe('helix@example.test')
    expect(mail.raw).toMatch(/Subject: Reset your Helix password/)
    expect(textOf(mail.raw)).toContain(`https://api.example.test/auth/password/reset?token=${token}`)
    expect(textOf(mail.raw)).toContain('within 30 minutes')
    expect(tokenFrom(mail.raw)).toBe(token)
    await mailer.close()
  })

  it('delivers a verification mail without a link when no public URL is set', async () => {
    const mailer = new SmtpMailer(sink.url, 'helix@example.test')
    const token = 'b'.repeat(43)
    const message = verifyEmailMessage({ to: 'bob@example.test', token, validMinutes: 1440 })
    expect(message.text).not.toContain('http')
    expect(message.text).toContain('POST /auth/email/verify')
    await mailer.send(message)
    const mail = await sink.next('bob@example.test')
    expect(mail.raw).toMatch(/Subject: Confirm your e-mail address/)
    expect(tokenFrom(mail.raw)).toBe(token)
    expect(verifyEmailMessage({ to: 'x', token, publicUrl: 'http://h', validMinutes: 1 }).text).toContain(
      `http://h/auth/email/verify?token=${token}`,
    )
    await mailer.close()
  })

  it('reports an unreachable server as MAIL_FAILED without the message body', async () => {
    const mailer = new SmtpMailer('smtp://127.0.0.1:1', 'helix@example.test')
    const err = await mailer
      .send({ to: 'c@example.test', subject: 's', text: 'secret-token-value' })
      .catch((e: unknown) => e as { code: string; message: string })
    expect(err).toMatchObject({ code: 'MAIL_FAILED' })
    expect((err as { message: string }).message).not.toContain('secret-token-value')
    await mailer.close()
  })
})
