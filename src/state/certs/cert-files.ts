import { X509Certificate } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { UserError } from '../../shared/errors.js'
import type { HelixHome } from '../../shared/home.js'

/** Where each certificate file lives, relative to the helix directory (README.md "The helix directory"). */
export const CERT_FILES = {
  caCert: 'certs/ca.crt',
  caKey: 'certs/ca.key',
  caBundle: 'certs/ca-bundle.crt',
  serverCert: 'certs/server.crt',
  serverKey: 'certs/server.key',
  clientCert: 'certs/client.crt',
  clientKey: 'certs/client.key',
  clientP12: 'certs/client.p12',
} as const

export type CertFile = (typeof CERT_FILES)[keyof typeof CERT_FILES]

export function certPath(home: HelixHome, file: CertFile): string {
  return home.path(...file.split('/'))
}

/** The file's name alone, for configs that mount certs/ elsewhere (nginx in a container). */
export function certFileName(file: CertFile): string {
  return file.slice(file.lastIndexOf('/') + 1)
}

/** A certificate read from disk: its PEM text and node's parsed view of it. */
export interface StoredCertificate {
  file: string
  pem: string
  certificate: X509Certificate
}

/** Reads a text file of the helix directory; undefined when it does not exist. */
export async function readOptional(home: HelixHome, file: CertFile): Promise<string | undefined> {
  try {
    return await readFile(certPath(home, file), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new UserError('CERT_UNREADABLE', `Cannot read ${file}: ${(err as Error).message}`, {
      hint: `Fix the permissions of ${file} (the helix user must be able to read it).`,
      cause: err,
    })
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g

function corrupt(file: string, cause?: unknown): UserError {
  return new UserError('CERT_CORRUPT', `${file} is not a readable PEM certificate.`, {
    hint: `Restore ${file} from a backup, or re-issue it (\`helix certs issue …\`, or \`helix certs ca --force\` for the CA).`,
    cause,
  })
}

/** Parses every PEM certificate in a text; a file with none, or a damaged one, is CERT_CORRUPT. */
export function parseCertificates(text: string, file: string): StoredCertificate[] {
  const blocks = text.match(PEM_CERTIFICATE) ?? []
  if (blocks.length === 0) throw corrupt(file)
  return blocks.map((pem) => {
    try {
      return { file, pem: `${pem}\n`, certificate: new X509Certificate(pem) }
    } catch (cause) {
      throw corrupt(file, cause)
    }
  })
}

/** Reads one certificate file; undefined when the file does not exist. */
export async function readCertificate(
  home: HelixHome,
  file: CertFile,
): Promise<StoredCertificate | undefined> {
  const text = await readOptional(home, file)
  return text === undefined ? undefined : parseCertificates(text, file)[0]
}

/** Reads a bundle of certificates (ca-bundle.crt); empty when the file does not exist. */
export async function readCertificateBundle(home: HelixHome, file: CertFile): Promise<StoredCertificate[]> {
  const text = await readOptional(home, file)
  return text === undefined ? [] : parseCertificates(text, file)
}
