import { execa } from 'execa'

export interface SelfSignedOptions {
  keyOut: string
  certOut: string
  days: number
  /** e.g. '/CN=localhost' */
  subject: string
  /** subjectAltName extension, e.g. 'DNS:localhost,IP:127.0.0.1' */
  san?: string
}

/** A self-signed EC P-256 certificate and its key, made by the real openssl (req -x509). */
export async function writeSelfSigned(options: SelfSignedOptions): Promise<void> {
  await execa('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    String(options.days),
    '-subj',
    options.subject,
    ...(options.san ? ['-addext', `subjectAltName=${options.san}`] : []),
    '-keyout',
    options.keyOut,
    '-out',
    options.certOut,
  ])
}
