import { UserError } from '../../shared/errors.js'
import type { HelixHome } from '../../shared/home.js'
import { CERT_FILES, readCertificate, readOptional, type StoredCertificate } from './cert-files.js'
import type { Authority } from './certificate-profiles.js'
import { importPrivateKeyPem, publicKeyDer, type SigningKeyPair } from './key-pair.js'
import { x509 } from './x509-provider.js'

export function caMissing(home: HelixHome): UserError {
  return new UserError(
    'CA_MISSING',
    `No certificate authority in ${home.root} (${CERT_FILES.caCert} is missing).`,
    {
      hint: 'Create one with `helix certs ca` (or `helix init`), then issue certificates.',
    },
  )
}

/** Half a CA on disk: never silently replaced, since the other half may be someone's only copy. */
export function caIncomplete(missing: string): UserError {
  return new UserError('CA_INCOMPLETE', `The CA is incomplete: ${missing} is missing.`, {
    hint: `Restore ${missing} from a backup, or replace the CA with \`helix certs ca --force\` (leaves must then be re-issued).`,
  })
}

/** The CA certificate; CA_MISSING when there is none. */
export async function requireCaCertificate(home: HelixHome): Promise<StoredCertificate> {
  const ca = await readCertificate(home, CERT_FILES.caCert)
  if (!ca) throw caMissing(home)
  return ca
}

/** Whether a stored certificate certifies the given key pair (same public key). */
export async function certificateMatchesKeys(
  stored: StoredCertificate,
  keys: SigningKeyPair,
): Promise<boolean> {
  const certKey = stored.certificate.publicKey.export({ type: 'spki', format: 'der' })
  return certKey.equals(await publicKeyDer(keys))
}

/**
 * The CA able to sign: certificate and key, checked to belong together so a leaf is never signed by a
 * key its CA certificate does not name.
 */
export async function loadAuthority(home: HelixHome): Promise<Authority> {
  const ca = await requireCaCertificate(home)
  const keyPem = await readOptional(home, CERT_FILES.caKey)
  if (keyPem === undefined) {
    throw new UserError(
      'CA_KEY_MISSING',
      `${CERT_FILES.caKey} is missing, so the CA cannot sign certificates.`,
      {
        hint: 'Restore certs/ca.key from a backup, or roll to a new CA with `helix certs rotate --ca`.',
      },
    )
  }
  const keys = await importPrivateKeyPem(keyPem, CERT_FILES.caKey)
  if (!(await certificateMatchesKeys(ca, keys))) {
    throw new UserError('CERT_KEY_MISMATCH', `${CERT_FILES.caKey} does not belong to ${CERT_FILES.caCert}.`, {
      hint: 'Restore the matching pair from a backup, or roll to a new CA with `helix certs rotate --ca`.',
    })
  }
  return { certificate: new x509.X509Certificate(ca.pem), keys }
}
