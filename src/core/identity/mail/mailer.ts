/** One outgoing e-mail. Bodies are rendered from templates/mail/*.eta by the caller. */
export interface MailMessage {
  to: string
  subject: string
  text: string
}

/** Where mail goes: an SMTP server when one is configured, else the outbox table. */
export interface Mailer {
  /** Sends (or stores) one message; resolves once the server or database accepted it. */
  send(message: MailMessage): Promise<void>
  close(): Promise<void>
}
