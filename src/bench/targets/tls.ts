import { existsSync, readFileSync } from 'node:fs'
import { rootCertificates } from 'node:tls'
import { UserError } from '../../shared/errors.js'
import type { TlsOptions } from '../types.js'

export interface TlsFlags {
  url: string
  /** PEM file of CAs to trust instead of the default roots (curl's --cacert). */
  cacert?: string
  /** Client certificate and key for mTLS (PEM). */
  clientCert?: string
  clientKey?: string
  /** The helix directory's CA (certs/ca.crt), trusted alongside the default roots when present. */
  helixCa?: string
}

function readPem(file: string, flag: string, what: string): string {
  if (!existsSync(file)) {
    throw new UserError('BENCH_TLS_FILE_MISSING', `--${flag} ${file} does not exist`, {
      hint: `Pass the path of a PEM ${what}.`,
    })
  }
  const text = readFileSync(file, 'utf8')
  if (!text.includes('-----BEGIN ')) {
    throw new UserError('BENCH_TLS_FILE_INVALID', `--${flag} ${file} is not a PEM file`, {
      hint: `Pass a PEM ${what} (the text between -----BEGIN and -----END lines).`,
    })
  }
  return text
}

/**
 * TLS settings for an https:// (gRPC: grpcs://) target: the CAs to trust and, for mTLS, a client
 * certificate. Without --cacert the default roots are trusted plus, when it exists, the helix
 * directory's own CA, so `helix bench` reaches `helix serve --tls` with no flags. Certificates are
 * always verified.
 */
export function tlsOptions(flags: TlsFlags): TlsOptions | undefined {
  if (!flags.url.startsWith('https:') && !flags.url.startsWith('grpcs:')) {
    const given = flags.cacert
      ? 'cacert'
      : flags.clientCert
        ? 'client-cert'
        : flags.clientKey
          ? 'client-key'
          : undefined
    if (given) {
      const grpc = flags.url.startsWith('grpc:')
      throw new UserError(
        'BENCH_TLS_WITHOUT_HTTPS',
        `--${given} needs ${grpc ? 'a grpcs://' : 'an https://'} --url (got ${flags.url})`,
        {
          hint: `Use the ${grpc ? 'grpcs://' : 'https://'} address of the server, or drop the TLS flags.`,
        },
      )
    }
    return undefined
  }
  if (Boolean(flags.clientCert) !== Boolean(flags.clientKey)) {
    throw new UserError('BENCH_TLS_CLIENT_PAIR', '--client-cert and --client-key go together', {
      hint: 'For mTLS pass both, for example --client-cert certs/client.crt --client-key certs/client.key.',
    })
  }
  const options: TlsOptions = {}
  if (flags.cacert) options.ca = [readPem(flags.cacert, 'cacert', 'CA certificate bundle')]
  else if (flags.helixCa && existsSync(flags.helixCa))
    options.ca = [...rootCertificates, readFileSync(flags.helixCa, 'utf8')]
  if (flags.clientCert && flags.clientKey) {
    options.cert = readPem(flags.clientCert, 'client-cert', 'client certificate')
    options.key = readPem(flags.clientKey, 'client-key', 'private key')
  }
  return options
}
