import { appendFile, chown, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startEmbedded, stopEmbedded } from '../../../src/provision/postgres/embedded-server.js'
import { parseConfig } from '../../../src/shared/config.js'
import { isHelixError } from '../../../src/shared/errors.js'
import { embeddedDataDir } from '../../../src/state/db/embedded-state.js'
import { openDatabase } from '../../../src/state/db/pool.js'
import { resolveDatabase } from '../../../src/state/db/resolve.js'
import { hasTool } from '../../helpers/tools.js'
import { provisionDatabase, type TestDatabase } from './database-targets.js'

const openssl = (args: string[], cwd: string) => execa('openssl', args, { cwd })

/** A CA and a server certificate for the given subjectAltName, as files in dir. */
async function issue(dir: string, name: string, san: string): Promise<void> {
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}-ca.key`], dir)
  await openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      `${name}-ca.key`,
      '-subj',
      `/CN=${name} test CA`,
      '-days',
      '2',
      '-out',
      `${name}-ca.crt`,
    ],
    dir,
  )
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir)
  await openssl(['req', '-new', '-key', `${name}.key`, '-subj', '/CN=postgres', '-out', `${name}.csr`], dir)
  await writeFile(join(dir, `${name}.ext`), `subjectAltName=${san}\n`)
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${name}-ca.crt`,
      '-CAkey',
      `${name}-ca.key`,
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ],
    dir,
  )
}

describe.skipIf(!hasTool('openssl'))(
  'TLS to the database (sslmode and database.ca_file), against a real TLS server',
  () => {
    let db: TestDatabase
    let certs: string
    let dataDir: string

    /** Restarts the embedded server with the given server certificate. */
    async function serveWith(name: string): Promise<void> {
      await stopEmbedded(db.home, db.config)
      const owner = await stat(dataDir)
      for (const [from, to, mode] of [
        [`${name}.crt`, 'server.crt', 0o644],
        [`${name}.key`, 'server.key', 0o600],
      ] as const) {
        await writeFile(join(dataDir, to), await readFile(join(certs, from)), { mode })
        await chown(join(dataDir, to), owner.uid, owner.gid)
      }
      await startEmbedded(db.home, db.config)
    }

    async function connect(query: string, caFile?: string) {
      const embedded = await resolveDatabase(db.home, db.config)
      const url = `${embedded.url}?${query}`
      const config = parseConfig({ database: { url, ...(caFile ? { ca_file: caFile } : {}) } })
      const pool = await openDatabase(await resolveDatabase(db.home, config), config.database, {
        attempts: 1,
      })
      try {
        const { rows } = await pool.query<{ ssl: boolean }>(
          'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
        )
        return rows[0].ssl
      } finally {
        await pool.close()
      }
    }

    async function failure(query: string, caFile?: string): Promise<string> {
      try {
        await connect(query, caFile)
      } catch (err) {
        return isHelixError(err) ? `${err.code}: ${err.message}` : String(err)
      }
      return 'connected'
    }

    beforeAll(async () => {
      db = await provisionDatabase('embedded')
      dataDir = embeddedDataDir(db.home)
      certs = await mkdtemp(join(tmpdir(), 'helix-db-tls-'))
      await issue(certs, 'good', 'IP:127.0.0.1,DNS:localhost')
      await issue(certs, 'other', 'DNS:db.example.test')
      await appendFile(
        join(dataDir, 'postgresql.conf'),
        "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
      )
      await serveWith('good')
    })
    afterAll(async () => {
      await db?.teardown()
      await rm(certs, { recursive: true, force: true })
    })

    it('verify-full with the CA from database.ca_file connects encrypted', async () => {
      expect(await connect('sslmode=verify-full', join(certs, 'good-ca.crt'))).toBe(true)
      expect(await connect(`sslmode=verify-full&sslrootcert=${join(certs, 'good-ca.crt')}`)).toBe(true)
      expect(await connect('sslmode=disable')).toBe(false)
    })

    it('verify-full refuses a server whose certificate comes from another CA', async () => {
      expect(await failure('sslmode=verify-full', join(certs, 'other-ca.crt'))).toMatch(
        /^DB_UNREACHABLE: .*certificate/,
      )
    })

    it('verify-full refuses a certificate for another host name; verify-ca and require accept it', async () => {
      await serveWith('other')
      expect(await failure('sslmode=verify-full', join(certs, 'other-ca.crt'))).toMatch(
        /^DB_UNREACHABLE: .*(altnames|IP: 127\.0\.0\.1)/,
      )
      expect(await connect('sslmode=verify-ca', join(certs, 'other-ca.crt'))).toBe(true)
      expect(await connect('sslmode=require')).toBe(true)
    })
  },
)
