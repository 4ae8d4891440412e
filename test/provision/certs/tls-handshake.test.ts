import { createServer, request, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { execa } from 'execa'
import { afterEach, describe, expect, it } from 'vitest'
import { ensureCertificates } from '../../../src/provision/certs/certificates.js'
import type { HelixHome } from '../../../src/shared/home.js'
import { hasTool } from '../../helpers/tools.js'
import { configWith, freshHome, read } from './helpers.js'

let server: Server | undefined
afterEach(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)))
  server = undefined
})

/** A real HTTPS server with certs/server.crt that requires a client certificate signed by the CA. */
async function startMtlsServer(home: HelixHome): Promise<number> {
  server = createServer(
    {
      cert: await read(home, 'certs/server.crt'),
      key: await read(home, 'certs/server.key'),
      ca: await read(home, 'certs/ca.crt'),
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const peer = (req.socket as import('node:tls').TLSSocket).getPeerCertificate()
      res.end(`hello ${peer.subject?.CN}`)
    },
  )
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
  return (server!.address() as AddressInfo).port
}

function get(
  port: number,
  host: string,
  options: { cert?: Buffer; key?: Buffer; ca: Buffer },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', servername: host === '127.0.0.1' ? undefined : host, port, path: '/', ...options },
      (res) => {
        let body = ''
        res.on('data', (chunk) => (body += chunk))
        res.on('end', () => resolve(body))
      },
    )
    req.on('error', reject)
    req.end()
  })
}

describe('mutual TLS with the generated certificates', () => {
  for (const keyType of ['ecdsa', 'rsa'] as const) {
    it(`lets a client with client.crt in and rejects one without (${keyType})`, async () => {
      const home = await freshHome()
      await ensureCertificates(home, configWith({ tls: { key_type: keyType } }))
      const port = await startMtlsServer(home)
      const ca = await read(home, 'certs/ca.crt')
      const withCert = await get(port, 'localhost', {
        ca,
        cert: await read(home, 'certs/client.crt'),
        key: await read(home, 'certs/client.key'),
      })
      expect(withCert).toBe('hello helix-client')
      // The server certificate also checks out for the IP SAN.
      const byIp = await get(port, '127.0.0.1', {
        ca,
        cert: await read(home, 'certs/client.crt'),
        key: await read(home, 'certs/client.key'),
      })
      expect(byIp).toBe('hello helix-client')
      await expect(get(port, 'localhost', { ca })).rejects.toThrow(/certificate|socket hang up|ECONNRESET/i)
    })
  }

  it('rejects a client certificate from another CA', async () => {
    const home = await freshHome()
    const other = await freshHome()
    await ensureCertificates(home, configWith())
    await ensureCertificates(other, configWith())
    const port = await startMtlsServer(home)
    const ca = await read(home, 'certs/ca.crt')
    await expect(
      get(port, 'localhost', {
        ca,
        cert: await read(other, 'certs/client.crt'),
        key: await read(other, 'certs/client.key'),
      }),
    ).rejects.toThrow(/certificate|socket hang up|ECONNRESET/i)
  })

  describe.skipIf(!hasTool('curl'))('curl with client.p12', () => {
    for (const keyType of ['ecdsa', 'rsa'] as const) {
      it(`authenticates with the PKCS#12 bundle and its password (${keyType})`, async () => {
        const home = await freshHome()
        const { clientP12Password } = await ensureCertificates(
          home,
          configWith({ tls: { key_type: keyType } }),
        )
        const port = await startMtlsServer(home)
        const curl = (password: string) =>
          execa(
            'curl',
            [
              '-sS',
              '--cacert',
              home.path('certs/ca.crt'),
              '--cert-type',
              'P12',
              '--cert',
              `${home.path('certs/client.p12')}:${password}`,
              `https://localhost:${port}/`,
            ],
            { reject: false },
          )
        const ok = await curl(clientP12Password!)
        expect(ok.stdout).toBe('hello helix-client')
        expect(ok.exitCode).toBe(0)
        const wrong = await curl('not-the-password')
        expect(wrong.exitCode).not.toBe(0)
      })
    }
  })
})
