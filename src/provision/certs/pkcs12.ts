import { createCipheriv, createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto'
import forge from 'node-forge'

const { asn1 } = forge
type Asn1 = forge.asn1.Asn1

/**
 * PKCS#12 (RFC 7292) built by hand from forge.asn1, because forge's own writer only takes forge RSA
 * key objects and cannot hold the ECDSA keys Helix issues by default. The profile is OpenSSL 3's
 * modern default: the key is a PBES2 shrouded bag (PBKDF2-HMAC-SHA256 + AES-256-CBC) and the MAC is
 * HMAC-SHA256; certificates are stored unencrypted (they are public, like `-certpbe NONE`).
 */

const OID = {
  data: '1.2.840.113549.1.7.1',
  pkcs8ShroudedKeyBag: '1.2.840.113549.1.12.10.1.2',
  certBag: '1.2.840.113549.1.12.10.1.3',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  friendlyName: '1.2.840.113549.1.9.20',
  localKeyId: '1.2.840.113549.1.9.21',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacWithSha256: '1.2.840.113549.2.9',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  sha256: '2.16.840.1.101.3.4.2.1',
} as const

/**
 * PBKDF2 rounds for the key and the MAC. The generated password has 128+ random bits, so rounds only
 * matter for user-chosen passwords; 10 000 is five times OpenSSL's default (2048) and still keeps the
 * hand-rolled PKCS#12 MAC derivation (one hash per round in JS) near 10 ms.
 */
export const PKCS12_ITERATIONS = 10_000

const { Class, Type } = asn1
const seq = (items: Asn1[]) => asn1.create(Class.UNIVERSAL, Type.SEQUENCE, true, items)
const set = (items: Asn1[]) => asn1.create(Class.UNIVERSAL, Type.SET, true, items)
const oid = (id: string) => asn1.create(Class.UNIVERSAL, Type.OID, false, asn1.oidToDer(id).getBytes())
const octets = (bytes: Buffer) =>
  asn1.create(Class.UNIVERSAL, Type.OCTETSTRING, false, bytes.toString('binary'))
const integer = (n: number) =>
  asn1.create(Class.UNIVERSAL, Type.INTEGER, false, asn1.integerToDer(n).getBytes())
const nul = () => asn1.create(Class.UNIVERSAL, Type.NULL, false, '')
const explicit0 = (inner: Asn1) => asn1.create(Class.CONTEXT_SPECIFIC, 0, true, [inner])
const der = (node: Asn1) => Buffer.from(asn1.toDer(node).getBytes(), 'binary')

// forge encodes a BMPSTRING's JS string value as UTF-16BE itself.
const bmpString = (text: string) => asn1.create(Class.UNIVERSAL, Type.BMPSTRING, false, text)

/** ContentInfo of type data wrapping DER bytes. */
function dataContentInfo(content: Buffer): Asn1 {
  return seq([oid(OID.data), explicit0(octets(content))])
}

function bagAttributes(friendlyName: string, localKeyId: Buffer): Asn1 {
  return set([
    seq([oid(OID.friendlyName), set([bmpString(friendlyName)])]),
    seq([oid(OID.localKeyId), set([octets(localKeyId)])]),
  ])
}

/** EncryptedPrivateKeyInfo with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC), RFC 8018. */
function shroudKey(pkcs8Der: Buffer, password: string): Asn1 {
  const salt = randomBytes(16)
  const iv = randomBytes(16)
  // PBES2 takes the password as UTF-8 bytes (what OpenSSL 3 does).
  const key = pbkdf2Sync(Buffer.from(password, 'utf8'), salt, PKCS12_ITERATIONS, 32, 'sha256')
  const cipher = createCipheriv('aes-256-cbc', key, iv)
  const encrypted = Buffer.concat([cipher.update(pkcs8Der), cipher.final()])
  const algorithm = seq([
    oid(OID.pbes2),
    seq([
      seq([
        oid(OID.pbkdf2),
        seq([octets(salt), integer(PKCS12_ITERATIONS), seq([oid(OID.hmacWithSha256), nul()])]),
      ]),
      seq([oid(OID.aes256Cbc), octets(iv)]),
    ]),
  ])
  return seq([algorithm, octets(encrypted)])
}

/**
 * The PKCS#12 key derivation (RFC 7292 appendix B.2) for the MAC key (ID 3). With SHA-256 and a
 * 32-byte key only the first output block is needed, so the I-block update of later rounds never runs.
 */
function pkcs12MacKey(password: string, salt: Buffer, iterations: number): Buffer {
  const v = 64
  const repeatTo = (bytes: Buffer) => {
    if (bytes.length === 0) return Buffer.alloc(0)
    const length = v * Math.ceil(bytes.length / v)
    const out = Buffer.alloc(length)
    for (let i = 0; i < length; i++) out[i] = bytes[i % bytes.length]
    return out
  }
  // The password is a NUL-terminated big-endian BMPString here (RFC 7292 B.1).
  const bmpPassword = Buffer.concat([Buffer.from(password, 'utf16le').swap16(), Buffer.alloc(2)])
  const diversifier = Buffer.alloc(v, 3)
  let block = createHash('sha256')
    .update(diversifier)
    .update(repeatTo(salt))
    .update(repeatTo(bmpPassword))
    .digest()
  for (let i = 1; i < iterations; i++) block = createHash('sha256').update(block).digest()
  return block
}

export interface Pkcs12Input {
  /** PKCS#8 DER of the private key (ECDSA or RSA). */
  privateKeyDer: Buffer
  /** DER of the certificate that goes with the key. */
  certificateDer: Buffer
  /** DER of CA certificates to ship alongside (so curl/browsers can show the chain). */
  caCertificatesDer: Buffer[]
  friendlyName: string
  password: string
}

/** A password-protected PKCS#12 bundle (DER) holding one key, its certificate and the CA chain. */
export function buildPkcs12(input: Pkcs12Input): Buffer {
  const localKeyId = createHash('sha256').update(input.certificateDer).digest().subarray(0, 20)
  const certBag = (certDer: Buffer, attributes?: Asn1) =>
    seq([
      oid(OID.certBag),
      explicit0(seq([oid(OID.x509Certificate), explicit0(octets(certDer))])),
      ...(attributes ? [attributes] : []),
    ])
  const certSafe = seq([
    certBag(input.certificateDer, bagAttributes(input.friendlyName, localKeyId)),
    ...input.caCertificatesDer.map((ca) => certBag(ca)),
  ])
  const keySafe = seq([
    seq([
      oid(OID.pkcs8ShroudedKeyBag),
      explicit0(shroudKey(input.privateKeyDer, input.password)),
      bagAttributes(input.friendlyName, localKeyId),
    ]),
  ])
  const authenticatedSafe = der(seq([dataContentInfo(der(certSafe)), dataContentInfo(der(keySafe))]))

  const macSalt = randomBytes(16)
  const macKey = pkcs12MacKey(input.password, macSalt, PKCS12_ITERATIONS)
  const mac = createHmac('sha256', macKey).update(authenticatedSafe).digest()
  const macData = seq([
    seq([seq([oid(OID.sha256), nul()]), octets(mac)]),
    octets(macSalt),
    integer(PKCS12_ITERATIONS),
  ])
  return der(seq([integer(3), dataContentInfo(authenticatedSafe), macData]))
}
