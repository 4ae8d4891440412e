import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import { writeSelfSigned } from '../../helpers/openssl.js'

/**
 * Writes a real CA, a server certificate for localhost/127.0.0.1 and two client certificates (one
 * signed by the CA, one by a stranger) with openssl, laid out as `helix init` lays out certs/.
 */
export async function writeTestCerts(helixDir: string): Promise<{ certsDir: string; strangerDir: string }> {
  const certsDir = join(helixDir, 'certs')
  const strangerDir = join(helixDir, 'stranger')
  await mkdir(certsDir, { recursive: true })
  await mkdir(strangerDir, { recursive: true })
  const ssl = (args: string[], cwd = certsDir) => execa('openssl', args, { cwd })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  await writeSelfSigned({
    keyOut: join(certsDir, 'ca.key'),
    certOut: join(certsDir, 'ca.crt'),
    days: 2,
    subject: '/CN=helix test CA',
  })
  await ssl(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'])
  await writeFile(
    join(certsDir, 'server.ext'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n',
  )
  await ssl([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '2',
    '-extfile',
    'server.ext',
  ])
  await writeFile(join(certsDir, 'client.ext'), 'extendedKeyUsage=clientAuth\n')
  await ssl(['req', ...ec, '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=client'])
  await ssl([
    'x509',
    '-req',
    '-in',
    'client.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'client.crt',
    '-days',
    '2',
    '-extfile',
    'client.ext',
  ])
  await writeSelfSigned({
    keyOut: join(strangerDir, 'client.key'),
    certOut: join(strangerDir, 'client.crt'),
    days: 2,
    subject: '/CN=stranger',
  })
  return { certsDir, strangerDir }
}
