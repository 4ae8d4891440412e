import { copyFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'

/**
 * A throwaway self-signed certificate and key (openssl req -x509) in <dir>/server.crt, server.key, and
 * the same certificate as ca.crt, so the render tests do not depend on the certificate service.
 */
export async function writeSelfSignedCerts(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true })
  await execa('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout',
    join(dir, 'server.key'),
    '-out',
    join(dir, 'server.crt'),
  ])
  await copyFile(join(dir, 'server.crt'), join(dir, 'ca.crt'))
  await copyFile(join(dir, 'server.crt'), join(dir, 'client.crt'))
  await copyFile(join(dir, 'server.key'), join(dir, 'client.key'))
}
