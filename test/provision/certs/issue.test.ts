import { readdir } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { ensureCertificates } from '../../../src/provision/certs/certificates.js'
import { issueCertificate } from '../../../src/provision/certs/issue.js'
import { CERT_FILES } from '../../../src/state/certs/cert-files.js'
import { hasTool } from '../../helpers/tools.js'
import { configWith, freshHome, openssl, read } from './helpers.js'

describe('issueCertificate (helix certs issue)', () => {
  it('re-issues the server leaf from the existing CA with extra SANs, days and name', async () => {
    const home = await freshHome()
    const config = configWith({ domain: 'api.example.com' })
    await ensureCertificates(home, config)
    const ca = await read(home, CERT_FILES.caCert)
    const before = await read(home, CERT_FILES.serverCert)
    const result = await issueCertificate(home, config, 'server', {
      sans: ['10.1.2.3', 'edge.example.com'],
      days: 30,
      name: 'edge',
    })
    expect(result.created).toEqual([CERT_FILES.serverCert, CERT_FILES.serverKey])
    expect(result.certificate).toMatchObject({ role: 'server', subject: 'CN=edge, O=Helix', daysLeft: 29 })
    expect(result.certificate.sans).toEqual([
      'DNS:api.example.com',
      'IP:10.1.2.3',
      'DNS:edge.example.com',
      'DNS:localhost',
      'IP:127.0.0.1',
      'IP:::1',
    ])
    expect(result.clientP12Password).toBeUndefined()
    expect(await read(home, CERT_FILES.serverCert)).not.toEqual(before)
    expect(await read(home, CERT_FILES.caCert)).toEqual(ca)
    if (hasTool('openssl')) {
      const verify = await openssl([
        'verify',
        '-CAfile',
        home.path(CERT_FILES.caCert),
        home.path(CERT_FILES.serverCert),
      ])
      expect(verify.out).toContain('OK')
    }
  })

  it('issues a client leaf with a chosen name and p12 password, or a generated password', async () => {
    const home = await freshHome()
    const config = configWith()
    await ensureCertificates(home, config)
    const given = await issueCertificate(home, config, 'client', {
      name: 'ci-runner',
      p12Password: 'correct horse battery',
    })
    expect(given.created).toEqual([CERT_FILES.clientCert, CERT_FILES.clientKey, CERT_FILES.clientP12])
    expect(given.certificate.subject).toBe('CN=ci-runner, O=Helix')
    expect(given.clientP12Password).toBeUndefined()
    if (hasTool('openssl')) {
      const info = await openssl([
        'pkcs12',
        '-info',
        '-nokeys',
        '-in',
        home.path(CERT_FILES.clientP12),
        '-passin',
        'pass:correct horse battery',
      ])
      expect(info.out).toContain('subject=CN = ci-runner')
    }
    const generated = await issueCertificate(home, config, 'client')
    expect(generated.clientP12Password).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(generated.certificate.subject).toBe('CN=helix-client, O=Helix')
  })

  it('issues RSA leaves from an ECDSA CA on request', async () => {
    const home = await freshHome()
    await ensureCertificates(home, configWith())
    const result = await issueCertificate(home, configWith(), 'server', { keyType: 'rsa' })
    expect(result.certificate.key).toBe('rsa-2048')
  })

  it('rejects bad input with UserErrors and writes nothing', async () => {
    const home = await freshHome()
    const config = configWith()
    await ensureCertificates(home, config)
    const before = await readdir(home.certsDir)
    const server = await read(home, CERT_FILES.serverCert)
    await expect(issueCertificate(home, config, 'server', { days: 398 })).rejects.toMatchObject({
      code: 'CERT_DAYS_INVALID',
      exitCode: 2,
    })
    await expect(
      issueCertificate(home, config, 'server', { sans: ['no spaces allowed'] }),
    ).rejects.toMatchObject({ code: 'INVALID_NAME' })
    await expect(
      issueCertificate(home, config, 'server', { p12Password: 'whatever1' }),
    ).rejects.toMatchObject({ code: 'USAGE' })
    await expect(issueCertificate(home, config, 'client', { sans: ['x.example.com'] })).rejects.toMatchObject(
      { code: 'USAGE' },
    )
    await expect(issueCertificate(home, config, 'client', { p12Password: 'short' })).rejects.toMatchObject({
      code: 'P12_PASSWORD_INVALID',
    })
    await expect(issueCertificate(home, config, 'client', { name: '' })).rejects.toMatchObject({
      code: 'CERT_NAME_INVALID',
    })
    expect(await readdir(home.certsDir)).toEqual(before)
    expect(await read(home, CERT_FILES.serverCert)).toEqual(server)
  })

  it('needs a CA', async () => {
    const home = await freshHome()
    await expect(issueCertificate(home, configWith(), 'server')).rejects.toMatchObject({
      code: 'CA_MISSING',
      exitCode: 2,
      hint: expect.stringMatching(/helix certs ca.*helix init/),
    })
  })
})
