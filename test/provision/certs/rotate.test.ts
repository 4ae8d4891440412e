import { X509Certificate } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ensureCertificates } from '../../../src/provision/certs/certificates.js'
import { issueCertificate } from '../../../src/provision/certs/issue.js'
import { rotateCertificates } from '../../../src/provision/certs/rotate.js'
import { verifyCertificates } from '../../../src/provision/certs/verify.js'
import { CERT_FILES } from '../../../src/state/certs/cert-files.js'
import { hasTool } from '../../helpers/tools.js'
import { configWith, freshHome, openssl, read } from './helpers.js'

const pemsIn = (text: string) =>
  text.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []

describe('rotateCertificates (helix certs rotate)', () => {
  it('re-issues both leaves from the same CA and keeps their names', async () => {
    const home = await freshHome()
    const config = configWith({ domain: 'api.example.com' })
    await ensureCertificates(home, config)
    await issueCertificate(home, config, 'server', { sans: ['10.9.9.9'] })
    await issueCertificate(home, config, 'client', { name: 'robot' })
    const ca = await read(home, CERT_FILES.caCert)
    const oldServer = new X509Certificate(await read(home, CERT_FILES.serverCert))
    const result = await rotateCertificates(home, config, { p12Password: 'given-password' })
    expect(result.action).toBe('leaves')
    expect(result.created).toEqual([
      CERT_FILES.serverCert,
      CERT_FILES.serverKey,
      CERT_FILES.clientCert,
      CERT_FILES.clientKey,
      CERT_FILES.clientP12,
    ])
    expect(result.clientP12Password).toBeUndefined()
    expect(await read(home, CERT_FILES.caCert)).toEqual(ca)
    const server = new X509Certificate(await read(home, CERT_FILES.serverCert))
    expect(server.serialNumber).not.toBe(oldServer.serialNumber)
    expect(server.subjectAltName).toContain('IP Address:10.9.9.9')
    expect(server.subject).toContain('CN=api.example.com')
    expect(new X509Certificate(await read(home, CERT_FILES.clientCert)).subject).toContain('CN=robot')
    expect((await verifyCertificates(home, config)).ok).toBe(true)
  })

  it('rolls the CA with an overlap bundle: old leaves verify against the bundle, new ones against the new CA', async () => {
    const home = await freshHome()
    const config = configWith()
    await ensureCertificates(home, config)
    const oldCa = (await read(home, CERT_FILES.caCert)).toString()
    const oldClient = await read(home, CERT_FILES.clientCert)
    const oldClientPath = home.path('old-client.crt')
    await import('node:fs/promises').then((fs) => fs.writeFile(oldClientPath, oldClient))

    const result = await rotateCertificates(home, config, { ca: true })
    expect(result.action).toBe('ca')
    expect(result.created).toContain(CERT_FILES.caBundle)
    expect(result.trusted).toHaveLength(2)
    expect(result.clientP12Password).toMatch(/^[A-Za-z0-9_-]{32}$/)
    const newCa = (await read(home, CERT_FILES.caCert)).toString()
    expect(newCa).not.toBe(oldCa)
    const bundle = pemsIn((await read(home, CERT_FILES.caBundle)).toString())
    expect(bundle).toEqual([...pemsIn(newCa), ...pemsIn(oldCa)])
    expect((await verifyCertificates(home, config)).ok).toBe(true)

    if (hasTool('openssl')) {
      const ok = (args: string[]) => openssl(['verify', ...args])
      expect((await ok(['-CAfile', home.path(CERT_FILES.caBundle), oldClientPath])).out).toContain('OK')
      expect(
        (await ok(['-CAfile', home.path(CERT_FILES.caCert), home.path(CERT_FILES.serverCert)])).out,
      ).toContain('OK')
      expect(
        (await ok(['-CAfile', home.path(CERT_FILES.caCert), home.path(CERT_FILES.clientCert)])).out,
      ).toContain('OK')
      expect((await ok(['-CAfile', home.path(CERT_FILES.caCert), oldClientPath])).exitCode).not.toBe(0)
    }

    // A plain rotate during the overlap keeps the bundle.
    const bundleBytes = await read(home, CERT_FILES.caBundle)
    const leaves = await rotateCertificates(home, config)
    expect(leaves.trusted).toHaveLength(2)
    expect(await read(home, CERT_FILES.caBundle)).toEqual(bundleBytes)

    // A second roll before finishing keeps every CA still in the bundle.
    const again = await rotateCertificates(home, config, { ca: true })
    expect(again.trusted).toHaveLength(3)

    const finish = await rotateCertificates(home, config, { finish: true })
    expect(finish).toMatchObject({ action: 'finish', created: [CERT_FILES.caBundle] })
    expect(finish.trusted).toHaveLength(1)
    expect((await read(home, CERT_FILES.caBundle)).toString()).toBe(
      (await read(home, CERT_FILES.caCert)).toString(),
    )
    if (hasTool('openssl')) {
      expect(
        (await openssl(['verify', '-CAfile', home.path(CERT_FILES.caBundle), oldClientPath])).exitCode,
      ).not.toBe(0)
    }
  })

  it('finishing without a roll in progress changes nothing', async () => {
    const home = await freshHome()
    await ensureCertificates(home, configWith())
    const result = await rotateCertificates(home, configWith(), { finish: true })
    expect(result).toMatchObject({ action: 'finish', created: [], kept: [] })
  })

  it('rolls an RSA CA to an RSA CA when the settings name no key type', async () => {
    const home = await freshHome()
    await ensureCertificates(home, configWith({ tls: { key_type: 'rsa' } }))
    await rotateCertificates(home, configWith(), { ca: true })
    const ca = new X509Certificate(await read(home, CERT_FILES.caCert))
    expect(ca.publicKey.asymmetricKeyDetails?.modulusLength).toBe(3072)
    expect(new X509Certificate(await read(home, CERT_FILES.serverCert)).publicKey.asymmetricKeyType).toBe(
      'rsa',
    )
  })

  it('needs a CA, and checks a given password before anything is written', async () => {
    const home = await freshHome()
    await expect(rotateCertificates(home, configWith(), { ca: true })).rejects.toMatchObject({
      code: 'CA_MISSING',
    })
    await expect(rotateCertificates(home, configWith())).rejects.toMatchObject({ code: 'CA_MISSING' })
    await ensureCertificates(home, configWith())
    const before = await read(home, CERT_FILES.serverCert)
    await expect(rotateCertificates(home, configWith(), { p12Password: 'short' })).rejects.toMatchObject({
      code: 'P12_PASSWORD_INVALID',
    })
    expect(await read(home, CERT_FILES.serverCert)).toEqual(before)
  })
})
