import { renderTemplate } from '../../../shared/templates.js'
import type { MailMessage } from './mailer.js'

export interface AuthMailValues {
  to: string
  /** The single-use token, also shown as a code to paste. */
  token: string
  /** Base URL of the service, for a clickable link; absent: only the token is given. */
  publicUrl?: string
  /** Minutes until the token expires. */
  validMinutes: number
}

function link(publicUrl: string | undefined, path: string, token: string): string | undefined {
  return publicUrl ? `${publicUrl.replace(/\/+$/, '')}${path}?token=${encodeURIComponent(token)}` : undefined
}

export function verifyEmailMessage(values: AuthMailValues): MailMessage {
  return {
    to: values.to,
    subject: 'Confirm your e-mail address for Helix',
    text: renderTemplate('mail/verify-email.txt.eta', {
      ...values,
      link: link(values.publicUrl, '/auth/email/verify', values.token),
    }),
  }
}

export function resetPasswordMessage(values: AuthMailValues): MailMessage {
  return {
    to: values.to,
    subject: 'Reset your Helix password',
    text: renderTemplate('mail/reset-password.txt.eta', {
      ...values,
      link: link(values.publicUrl, '/auth/password/reset', values.token),
    }),
  }
}

/**
 * Sent instead of a verification mail when someone registers an address that already has an account:
 * the registration answer is the same for both (ASVS V6.3.8), so only the owner learns of the attempt.
 */
export function registrationAttemptMessage(values: { to: string; publicUrl?: string }): MailMessage {
  return {
    to: values.to,
    subject: 'Someone tried to register with your e-mail address',
    text: renderTemplate('mail/registration-attempt.txt.eta', {
      publicUrl: values.publicUrl?.replace(/\/+$/, ''),
    }),
  }
}
