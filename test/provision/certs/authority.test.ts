import { rm, stat, writeFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { createAuthority } from '../../../src/provision/certs/authority.js'
import { ensureCertificates } from '../../../src/provision/certs/certificates.js'
import { loadAuthority } from '../../../src/state/certs/authority-store.js'
import { CERT_FILES } from '../../../src/state/certs/cert-files.js'
import { configWith, freshHome, read } from './helpers.js'

describe('createAuthority (helix certs ca)', () => {
  it('creates an ECDSA CA by default and keeps it byte-identical afterwards', async () => {
    const home = await freshHome()
    const first = await createAuthority(home, configWith())
    expect(first.created).toEqual([CERT_FILES.caCert, CERT_FILES.caKey])
    expect(first.ca).toMatchObject({ role: 'ca', key: 'ecdsa-p256', sans: [], file: 'certs/ca.crt' })
    expect(first.ca.daysLeft).toBeGreaterThan(3650)
    expect((await stat(home.path(CERT_FILES.caKey))).mode & 0o777).toBe(0o600)
    const before = await read(home, CERT_FILES.caCert)
    const second = await createAuthority(home, configWith(), { keyType: 'rsa' })
    expect(second).toMatchObject({
      created: [],
      kept: [CERT_FILES.caCert, CERT_FILES.caKey],
      leavesNeedReissue: false,
    })
    expect(second.ca.serialNumber).toBe(first.ca.serialNumber)
    expect(await read(home, CERT_FILES.caCert)).toEqual(before)
  })

  it('makes an RSA-3072 CA on request and honours tls.ca_years', async () => {
    const home = await freshHome()
    const result = await createAuthority(home, configWith({ tls: { ca_years: 2 } }), { keyType: 'rsa' })
    expect(result.ca.key).toBe('rsa-3072')
    expect(result.ca.notAfter.slice(0, 4)).toBe(String(new Date().getUTCFullYear() + 2))
  })

  it('replaces the CA with force and says the leaves need re-issuing', async () => {
    const home = await freshHome()
    await ensureCertificates(home, configWith())
    const before = await read(home, CERT_FILES.caCert)
    const result = await createAuthority(home, configWith(), { force: true })
    expect(result.leavesNeedReissue).toBe(true)
    expect(await read(home, CERT_FILES.caCert)).not.toEqual(before)
  })

  it('refuses half a CA without force', async () => {
    const home = await freshHome()
    await createAuthority(home, configWith())
    await rm(home.path(CERT_FILES.caKey))
    await expect(createAuthority(home, configWith())).rejects.toMatchObject({
      code: 'CA_INCOMPLETE',
      message: expect.stringContaining('certs/ca.key'),
    })
  })

  it('reports a mismatched or corrupt CA clearly', async () => {
    const home = await freshHome()
    const other = await freshHome()
    await createAuthority(home, configWith())
    await createAuthority(other, configWith())
    await writeFile(home.path(CERT_FILES.caKey), await read(other, CERT_FILES.caKey))
    await expect(loadAuthority(home)).rejects.toMatchObject({ code: 'CERT_KEY_MISMATCH', exitCode: 2 })
    await writeFile(
      home.path(CERT_FILES.caCert),
      '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
    )
    await expect(loadAuthority(home)).rejects.toMatchObject({
      code: 'CERT_CORRUPT',
      message: expect.stringContaining('certs/ca.crt'),
    })
    await writeFile(home.path(CERT_FILES.caCert), 'garbage')
    await expect(loadAuthority(home)).rejects.toMatchObject({ code: 'CERT_CORRUPT' })
    await rm(home.path(CERT_FILES.caCert))
    await expect(loadAuthority(home)).rejects.toMatchObject({
      code: 'CA_MISSING',
      hint: expect.stringContaining('helix certs ca'),
    })
  })

  it('reports an unreadable certificate file', async () => {
    const home = await freshHome()
    await createAuthority(home, configWith())
    await rm(home.path(CERT_FILES.caCert))
    // A directory where the file should be cannot be read as one.
    await import('node:fs/promises').then((fs) => fs.mkdir(home.path(CERT_FILES.caCert)))
    await expect(loadAuthority(home)).rejects.toMatchObject({ code: 'CERT_UNREADABLE' })
  })
})
