import { rm, writeFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { ensureCertificates } from '../../../src/provision/certs/certificates.js'
import { rotateCertificates } from '../../../src/provision/certs/rotate.js'
import { verificationFailure, verifyCertificates } from '../../../src/provision/certs/verify.js'
import { loadAuthority } from '../../../src/state/certs/authority-store.js'
import { CERT_FILES } from '../../../src/state/certs/cert-files.js'
import { buildLeafCertificate } from '../../../src/state/certs/certificate-profiles.js'
import { generateKeyPair } from '../../../src/state/certs/key-pair.js'
import { listCertificates } from '../../../src/state/certs/list.js'
import { configWith, freshHome, read } from './helpers.js'

const DAY = 86_400_000

describe('listCertificates (helix certs list)', () => {
  it('lists the CA and leaves with subject, SANs, expiry and days left', async () => {
    const home = await freshHome()
    const config = configWith({ domain: 'api.example.com', sans: ['10.0.0.5'] })
    await ensureCertificates(home, config)
    const { certificates, warnings } = await listCertificates(home, config)
    expect(certificates.map((c) => [c.role, c.file])).toEqual([
      ['ca', 'certs/ca.crt'],
      ['server', 'certs/server.crt'],
      ['client', 'certs/client.crt'],
    ])
    const server = certificates[1]
    expect(server).toMatchObject({ subject: 'CN=api.example.com, O=Helix', key: 'ecdsa-p256', daysLeft: 89 })
    expect(server.sans).toEqual([
      'DNS:api.example.com',
      'IP:10.0.0.5',
      'DNS:localhost',
      'IP:127.0.0.1',
      'IP:::1',
    ])
    expect(server.issuer).toBe(certificates[0].subject)
    expect(new Date(server.notAfter).getTime() - Date.now()).toBeGreaterThan(89 * DAY)
    expect(warnings).toEqual([])
  })

  it('warns about certificates under tls.warn_days and expired ones', async () => {
    const home = await freshHome()
    const config = configWith()
    await ensureCertificates(home, config)
    const soon = await listCertificates(home, config, new Date(Date.now() + 70 * DAY))
    expect(soon.warnings).toEqual([
      'certs/server.crt expires in 19 days (under 30).',
      'certs/client.crt expires in 19 days (under 30).',
    ])
    expect(soon.certificates[1].warning).toBe(soon.warnings[0])
    const later = await listCertificates(home, config, new Date(Date.now() + 100 * DAY))
    expect(later.warnings).toEqual(['certs/server.crt has expired.', 'certs/client.crt has expired.'])
  })

  it('shows an old CA still trusted through the bundle, and needs a CA', async () => {
    const home = await freshHome()
    await expect(listCertificates(home, configWith())).rejects.toMatchObject({ code: 'CA_MISSING' })
    await ensureCertificates(home, configWith())
    await rotateCertificates(home, configWith(), { ca: true })
    const roles = (await listCertificates(home, configWith())).certificates.map((c) => `${c.role} ${c.file}`)
    expect(roles).toEqual([
      'ca certs/ca.crt',
      'previous-ca certs/ca-bundle.crt',
      'server certs/server.crt',
      'client certs/client.crt',
    ])
  })
})

describe('verifyCertificates (helix certs verify)', () => {
  it('passes every check for a fresh directory and the configured domain', async () => {
    const home = await freshHome()
    const config = configWith({ domain: 'api.example.com', sans: ['10.0.0.5'] })
    await ensureCertificates(home, config)
    const result = await verifyCertificates(home, config)
    expect(result.ok).toBe(true)
    expect(result.host).toBe('api.example.com')
    expect(result.checks.map((c) => `${c.file} ${c.check}`)).toEqual([
      'certs/ca.crt validity',
      'certs/server.crt chain',
      'certs/server.crt validity',
      'certs/server.crt purpose',
      'certs/server.crt host',
      'certs/server.key key',
      'certs/client.crt chain',
      'certs/client.crt validity',
      'certs/client.crt purpose',
      'certs/client.key key',
    ])
    for (const host of ['10.0.0.5', 'localhost', '127.0.0.1', '::1'])
      expect((await verifyCertificates(home, config, { host })).ok).toBe(true)
  })

  it('fails with CERT_HOST_MISMATCH for a name the server certificate lacks', async () => {
    const home = await freshHome()
    await ensureCertificates(home, configWith())
    const result = await verifyCertificates(home, configWith(), { host: 'other.example.com' })
    expect(result.ok).toBe(false)
    const error = verificationFailure(result)
    expect(error).toMatchObject({ code: 'CERT_HOST_MISMATCH', exitCode: 1 })
    expect(error.message).toBe('certs/server.crt: no SAN matches other.example.com')
    await expect(verifyCertificates(home, configWith(), { host: 'bad host!' })).rejects.toMatchObject({
      code: 'INVALID_NAME',
    })
  })

  it('fails with CERT_EXPIRED and CERT_NOT_YET_VALID outside the validity dates', async () => {
    const home = await freshHome()
    await ensureCertificates(home, configWith())
    const expired = verificationFailure(
      await verifyCertificates(home, configWith(), { now: new Date(Date.now() + 91 * DAY) }),
    )
    expect(expired.code).toBe('CERT_EXPIRED')
    expect(expired.message).toMatch(/^certs\/server\.crt: expired .* \(and 1 more failed check\)$/)
    const early = verificationFailure(
      await verifyCertificates(home, configWith(), { now: new Date(Date.now() - DAY) }),
    )
    expect(early.code).toBe('CERT_NOT_YET_VALID')
    expect(early.details?.checks).toHaveLength(3)
  })

  it('fails with CERT_UNTRUSTED for a leaf from another CA and CERT_KEY_MISMATCH for a foreign key', async () => {
    const home = await freshHome()
    const other = await freshHome()
    await ensureCertificates(home, configWith())
    await ensureCertificates(other, configWith())
    await writeFile(home.path(CERT_FILES.clientCert), await read(other, CERT_FILES.clientCert))
    const result = await verifyCertificates(home, configWith())
    const failed = result.checks.filter((c) => !c.ok).map((c) => c.code)
    expect(failed).toEqual(['CERT_UNTRUSTED', 'CERT_KEY_MISMATCH'])
    expect(verificationFailure(result).message).toContain('certs/client.crt: not signed by certs/ca.crt')
  })

  it('fails with CERT_WRONG_PURPOSE for a client certificate used as server', async () => {
    const home = await freshHome()
    await ensureCertificates(home, configWith())
    await writeFile(home.path(CERT_FILES.serverCert), await read(home, CERT_FILES.clientCert))
    await writeFile(home.path(CERT_FILES.serverKey), await read(home, CERT_FILES.clientKey))
    const codes = (await verifyCertificates(home, configWith())).checks
      .filter((c) => !c.ok)
      .map((c) => c.code)
    expect(codes).toEqual(['CERT_WRONG_PURPOSE', 'CERT_HOST_MISMATCH'])
  })

  it('reports missing leaves and keys', async () => {
    const home = await freshHome()
    await ensureCertificates(home, configWith())
    await rm(home.path(CERT_FILES.serverKey))
    await rm(home.path(CERT_FILES.clientCert))
    const codes = (await verifyCertificates(home, configWith())).checks
      .filter((c) => !c.ok)
      .map((c) => c.code)
    expect(codes).toEqual(['CERT_KEY_MISSING', 'CERT_MISSING'])
  })

  it('flags an expired leaf signed today with past dates (a real expired certificate)', async () => {
    const home = await freshHome()
    await ensureCertificates(home, configWith())
    const authority = await loadAuthority(home)
    const keys = await generateKeyPair('ecdsa', 'leaf')
    const old = await buildLeafCertificate(authority, keys, {
      kind: 'server',
      commonName: 'localhost',
      sans: [{ type: 'dns', value: 'localhost' }],
      validity: { notBefore: new Date(Date.now() - 100 * DAY), notAfter: new Date(Date.now() - 10 * DAY) },
    })
    await writeFile(home.path(CERT_FILES.serverCert), old.pem)
    await writeFile(home.path(CERT_FILES.serverKey), keys.privateKeyPem)
    const result = await verifyCertificates(home, configWith())
    expect(verificationFailure(result).code).toBe('CERT_EXPIRED')
    expect((await listCertificates(home, configWith())).warnings).toEqual(['certs/server.crt has expired.'])
  })
})
