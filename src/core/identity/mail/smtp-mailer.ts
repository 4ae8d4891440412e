import nodemailer, { type Transporter } from 'nodemailer'
import { Failure } from '../../../shared/errors.js'
import type { Mailer, MailMessage } from './mailer.js'

/** Delivers through the SMTP server of helix.yaml (mail.smtp_url) with nodemailer. */
export class SmtpMailer implements Mailer {
  private readonly transport: Transporter

  constructor(
    smtpUrl: string,
    private readonly from: string,
  ) {
    // requireTLS for plain smtp:// URLs is left to the URL (?requireTLS=true); smtps:// is TLS from the start.
    this.transport = nodemailer.createTransport(smtpUrl)
  }

  async send(message: MailMessage): Promise<void> {
    try {
      await this.transport.sendMail({
        from: this.from,
        to: message.to,
        subject: message.subject,
        text: message.text,
      })
    } catch (err) {
      // The message names the server, never the recipient's token or the body.
      throw new Failure(
        'MAIL_FAILED',
        `The SMTP server refused or did not answer: ${(err as Error).message}`,
        {
          hint: 'Check mail.smtp_url in helix.yaml (host, port, credentials, TLS).',
          cause: err,
        },
      )
    }
  }

  async close(): Promise<void> {
    this.transport.close()
  }
}
