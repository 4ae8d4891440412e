import { X509Certificate } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { buildPkcs12, PKCS12_ITERATIONS } from '../../../src/provision/certs/pkcs12.js'
import { buildCaCertificate, buildLeafCertificate } from '../../../src/state/certs/certificate-profiles.js'
import { generateKeyPair, privateKeyDer } from '../../../src/state/certs/key-pair.js'
import { caValidity, leafValidity } from '../../../src/state/certs/validity.js'
import { hasTool } from '../../helpers/tools.js'
import { freshHome, openssl } from './helpers.js'

async function clientBundle(keyType: 'ecdsa' | 'rsa', password: string) {
  const caKeys = await generateKeyPair(keyType, 'ca')
  const ca = await buildCaCertificate(caKeys, caValidity(1))
  const keys = await generateKeyPair(keyType, 'leaf')
  const leaf = await buildLeafCertificate({ certificate: ca.certificate, keys: caKeys }, keys, {
    kind: 'client',
    commonName: 'p12-test',
    sans: [],
    validity: leafValidity(1),
  })
  const p12 = buildPkcs12({
    privateKeyDer: await privateKeyDer(keys),
    certificateDer: Buffer.from(leaf.certificate.rawData),
    caCertificatesDer: [Buffer.from(ca.certificate.rawData)],
    friendlyName: 'p12-test',
    password,
  })
  const home = await freshHome()
  const path = home.path('client.p12')
  await writeFile(path, p12)
  return { path, keys, leaf, ca }
}

describe.skipIf(!hasTool('openssl'))('PKCS#12 bundles read by openssl', () => {
  for (const keyType of ['ecdsa', 'rsa'] as const) {
    for (const password of ['Zx9-generated_like_password', 'pässwörd ünïcode']) {
      it(`opens a ${keyType} bundle with password '${password}' using the modern algorithms`, async () => {
        const { path, leaf, ca, keys } = await clientBundle(keyType, password)
        const info = await openssl(['pkcs12', '-info', '-nokeys', '-in', path, '-passin', `pass:${password}`])
        expect(info.exitCode).toBe(0)
        expect(info.out).toContain(`MAC: sha256, Iteration ${PKCS12_ITERATIONS}`)
        expect(info.out).toContain(
          `Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration ${PKCS12_ITERATIONS}, PRF hmacWithSHA256`,
        )
        expect(info.out).toContain('friendlyName: p12-test')
        const certs = info.out.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)!
        expect(certs.map((pem) => new X509Certificate(pem).fingerprint256)).toEqual(
          [leaf.certificate, ca.certificate].map(
            (c) => new X509Certificate(Buffer.from(c.rawData)).fingerprint256,
          ),
        )
        const key = await openssl([
          'pkcs12',
          '-in',
          path,
          '-nocerts',
          '-nodes',
          '-passin',
          `pass:${password}`,
        ])
        const fromP12 = await openssl(['pkey', '-pubout'], key.out)
        const original = await openssl(['pkey', '-pubout'], keys.privateKeyPem)
        expect(fromP12.out).toBe(original.out)
        expect(fromP12.out).toContain('BEGIN PUBLIC KEY')
      })
    }
  }

  it('is refused by openssl with a wrong password', async () => {
    const { path } = await clientBundle('ecdsa', 'right-password')
    const info = await openssl(['pkcs12', '-info', '-nokeys', '-in', path, '-passin', 'pass:wrong-password'])
    expect(info.exitCode).not.toBe(0)
    expect(info.out).toMatch(/mac verify (failure|error)/i)
  })
})
