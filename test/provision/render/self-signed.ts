import { copyFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { writeSelfSigned } from '../../helpers/openssl.js'

/**
 * A throwaway self-signed certificate and key (openssl req -x509) in <dir>/server.crt, server.key, and
 * the same certificate as ca.crt, so the render tests do not depend on the certificate service.
 */
export async function writeSelfSignedCerts(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true })
  await writeSelfSigned({
    keyOut: join(dir, 'server.key'),
    certOut: join(dir, 'server.crt'),
    days: 2,
    subject: '/CN=localhost',
    san: 'DNS:localhost,IP:127.0.0.1',
  })
  await copyFile(join(dir, 'server.crt'), join(dir, 'ca.crt'))
  await copyFile(join(dir, 'server.crt'), join(dir, 'client.crt'))
  await copyFile(join(dir, 'server.key'), join(dir, 'client.key'))
}
