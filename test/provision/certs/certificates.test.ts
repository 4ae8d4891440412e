import { readdir, rm, stat, writeFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { ensureCertificates } from '../../../src/provision/certs/certificates.js'
import { CERT_FILES } from '../../../src/state/certs/cert-files.js'
import { hasTool } from '../../helpers/tools.js'
import { configWith, freshHome, openssl, read } from './helpers.js'

const ALL_FILES = [
  'certs/ca.crt',
  'certs/ca.key',
  'certs/server.crt',
  'certs/server.key',
  'certs/client.crt',
  'certs/client.key',
  'certs/client.p12',
]
const KEYS = ['certs/ca.key', 'certs/server.key', 'certs/client.key', 'certs/client.p12']

async function snapshot(home: Awaited<ReturnType<typeof freshHome>>, files = ALL_FILES) {
  return Object.fromEntries(
    await Promise.all(files.map(async (f) => [f, (await read(home, f)).toString('base64')])),
  )
}

describe.skipIf(!hasTool('openssl'))('ensureCertificates with openssl', () => {
  for (const keyType of ['ecdsa', 'rsa'] as const) {
    it(`creates a ${keyType} CA and leaves that openssl verifies, with the required extensions`, async () => {
      const home = await freshHome()
      const config = configWith({
        domain: 'api.example.com',
        sans: ['10.0.0.5', 'alt.example.com'],
        tls: { key_type: keyType },
      })
      const report = await ensureCertificates(home, config)
      expect(report.created).toEqual(ALL_FILES)
      expect(report.kept).toEqual([])
      expect(report.clientP12Password).toMatch(/^[A-Za-z0-9_-]{32}$/)

      const verify = await openssl([
        'verify',
        '-CAfile',
        home.path('certs/ca.crt'),
        home.path('certs/server.crt'),
        home.path('certs/client.crt'),
      ])
      expect(verify.exitCode).toBe(0)
      expect(verify.out).toContain('server.crt: OK')
      expect(verify.out).toContain('client.crt: OK')
      // Purpose-aware verification: the server leaf is fit for TLS servers, the client leaf for clients.
      const purpose = await openssl([
        'verify',
        '-purpose',
        'sslserver',
        '-CAfile',
        home.path('certs/ca.crt'),
        home.path('certs/server.crt'),
      ])
      expect(purpose.out).toContain('OK')
      const clientPurpose = await openssl([
        'verify',
        '-purpose',
        'sslclient',
        '-CAfile',
        home.path('certs/ca.crt'),
        home.path('certs/client.crt'),
      ])
      expect(clientPurpose.out).toContain('OK')

      const ca = (await openssl(['x509', '-in', home.path('certs/ca.crt'), '-noout', '-text'])).out
      expect(ca).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/)
      expect(ca).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/)
      expect(ca).toContain('Subject Key Identifier')
      expect(ca).toContain('Authority Key Identifier')
      expect(ca).toContain(keyType === 'ecdsa' ? 'ASN1 OID: prime256v1' : 'Public-Key: (3072 bit)')
      const caDates = (await openssl(['x509', '-in', home.path('certs/ca.crt'), '-noout', '-enddate'])).out
      expect(caDates).toContain(String(new Date().getUTCFullYear() + 10))
      const serial = (
        await openssl(['x509', '-in', home.path('certs/ca.crt'), '-noout', '-serial'])
      ).out.trim()
      expect(serial).toMatch(/^serial=01[0-9A-F]{32}$/)

      const server = (await openssl(['x509', '-in', home.path('certs/server.crt'), '-noout', '-text'])).out
      expect(server).toMatch(/Basic Constraints: critical\s+CA:FALSE/)
      expect(server).toMatch(/Extended Key Usage:\s+TLS Web Server Authentication/)
      expect(server).toMatch(
        keyType === 'rsa'
          ? /Key Usage: critical\s+Digital Signature, Key Encipherment/
          : /Key Usage: critical\s+Digital Signature\n/,
      )
      expect(server).toContain(
        'DNS:api.example.com, IP Address:10.0.0.5, DNS:alt.example.com, DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
      )
      expect(server).toContain('Subject: CN = api.example.com')
      expect(server).toContain(keyType === 'ecdsa' ? 'ASN1 OID: prime256v1' : 'Public-Key: (2048 bit)')
      const days =
        (new Date(
          (await openssl(['x509', '-in', home.path('certs/server.crt'), '-noout', '-enddate'])).out.split(
            '=',
          )[1],
        ).getTime() -
          Date.now()) /
        86_400_000
      expect(days).toBeGreaterThan(89.9)
      expect(days).toBeLessThanOrEqual(90)

      const client = (await openssl(['x509', '-in', home.path('certs/client.crt'), '-noout', '-text'])).out
      expect(client).toMatch(/Extended Key Usage:\s+TLS Web Client Authentication/)
      expect(client).toContain('Subject: CN = helix-client')

      const p12 = await openssl([
        'pkcs12',
        '-info',
        '-nokeys',
        '-in',
        home.path('certs/client.p12'),
        '-passin',
        `pass:${report.clientP12Password}`,
      ])
      expect(p12.exitCode).toBe(0)
      expect(p12.out).toContain('subject=CN = helix-client')
    })
  }
})

describe('ensureCertificates idempotence, force and permissions', () => {
  it('keeps every file byte-identical on a second run and reports them as kept', async () => {
    const home = await freshHome()
    const config = configWith()
    await ensureCertificates(home, config)
    const before = await snapshot(home)
    const second = await ensureCertificates(home, config)
    expect(second.created).toEqual([])
    expect(second.kept).toEqual(ALL_FILES)
    expect(second.clientP12Password).toBeUndefined()
    expect(await snapshot(home)).toEqual(before)
  })

  it('writes private keys and client.p12 with mode 0600 and certificates 0644', async () => {
    const home = await freshHome()
    await ensureCertificates(home, configWith())
    for (const file of ALL_FILES) {
      const mode = (await stat(home.path(file))).mode & 0o777
      expect([file, mode]).toEqual([file, KEYS.includes(file) ? 0o600 : 0o644])
    }
  })

  it('regenerates everything with force, and ends a CA roll by resetting the bundle', async () => {
    const home = await freshHome()
    const config = configWith()
    await ensureCertificates(home, config)
    await writeFile(home.path(CERT_FILES.caBundle), await read(home, CERT_FILES.caCert))
    const before = await snapshot(home)
    const forced = await ensureCertificates(home, config, { force: true })
    expect(forced.created).toEqual([...ALL_FILES.slice(0, 2), CERT_FILES.caBundle, ...ALL_FILES.slice(2)])
    expect(forced.clientP12Password).toBeDefined()
    const after = await snapshot(home)
    for (const file of ALL_FILES) expect(after[file]).not.toEqual(before[file])
    expect((await read(home, CERT_FILES.caBundle)).toString()).toBe(
      (await read(home, CERT_FILES.caCert)).toString(),
    )
  })

  it('re-creates only a missing server pair, signed by the kept CA', async () => {
    const home = await freshHome()
    const config = configWith()
    await ensureCertificates(home, config)
    const before = await snapshot(home)
    await rm(home.path(CERT_FILES.serverKey))
    const report = await ensureCertificates(home, config)
    expect(report.created).toEqual([CERT_FILES.serverCert, CERT_FILES.serverKey])
    expect(report.clientP12Password).toBeUndefined()
    const after = await snapshot(home)
    for (const file of ALL_FILES.filter((f) => !f.startsWith('certs/server')))
      expect(after[file]).toEqual(before[file])
  })

  it('rebuilds a missing client.p12 around the kept client key and certificate', async () => {
    const home = await freshHome()
    const config = configWith()
    await ensureCertificates(home, config)
    const before = await snapshot(home)
    await rm(home.path(CERT_FILES.clientP12))
    const report = await ensureCertificates(home, config)
    expect(report.created).toEqual([CERT_FILES.clientP12])
    expect(report.clientP12Password).toBeDefined()
    const after = await snapshot(home)
    expect(after[CERT_FILES.clientCert]).toEqual(before[CERT_FILES.clientCert])
    expect(after[CERT_FILES.clientKey]).toEqual(before[CERT_FILES.clientKey])
    if (hasTool('openssl')) {
      const keyFromP12 = await openssl([
        'pkcs12',
        '-in',
        home.path(CERT_FILES.clientP12),
        '-nocerts',
        '-nodes',
        '-passin',
        `pass:${report.clientP12Password}`,
      ])
      const p12Pub = await openssl(['pkey', '-pubout'], keyFromP12.out)
      const keyPub = await openssl(['pkey', '-pubout', '-in', home.path(CERT_FILES.clientKey)])
      expect(p12Pub.out).toBe(keyPub.out)
    }
  })

  it('refuses a CA key without its certificate, and writes nothing', async () => {
    const home = await freshHome()
    await ensureCertificates(home, configWith())
    await rm(home.path(CERT_FILES.caCert))
    await rm(home.path(CERT_FILES.serverCert))
    await expect(ensureCertificates(home, configWith())).rejects.toMatchObject({
      code: 'CA_INCOMPLETE',
      exitCode: 2,
    })
    expect(await readdir(home.certsDir)).not.toContain('server.crt')
  })

  it('rejects a bad SAN in the settings before writing anything', async () => {
    const home = await freshHome()
    await expect(ensureCertificates(home, configWith({ sans: ['bad name!'] }))).rejects.toMatchObject({
      code: 'INVALID_NAME',
    })
    expect(await readdir(home.root)).toEqual([])
  })

  it('fails with CA_KEY_MISSING when a leaf must be issued and the CA key is gone', async () => {
    const home = await freshHome()
    await ensureCertificates(home, configWith())
    await rm(home.path(CERT_FILES.caKey))
    await rm(home.path(CERT_FILES.clientCert))
    await expect(ensureCertificates(home, configWith())).rejects.toMatchObject({
      code: 'CA_KEY_MISSING',
      exitCode: 2,
    })
  })
})
