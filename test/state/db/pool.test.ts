import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../../src/shared/config.js'
import { isHelixError } from '../../../src/shared/errors.js'
import { HelixHome } from '../../../src/shared/home.js'
import { findFreePort } from '../../../src/shared/ports.js'
import { poolConfig, sslOptions } from '../../../src/state/db/connection-options.js'
import { readEmbeddedState, writeEmbeddedState } from '../../../src/state/db/embedded-state.js'
import { DatabasePool, openDatabase, unreachable } from '../../../src/state/db/pool.js'
import { redactUrl } from '../../../src/state/db/redact.js'
import { databaseMode, resolveDatabase } from '../../../src/state/db/resolve.js'
import { databaseTargets, provisionDatabase, type TestDatabase } from './database-targets.js'

async function rejection(promise: Promise<unknown>) {
  try {
    await promise
  } catch (err) {
    return err
  }
  throw new Error('expected a rejection')
}

describe('redactUrl', () => {
  it('hides passwords in the authority and in the query, and in unparseable strings', () => {
    expect(redactUrl('postgresql://u:s3cret@db:5432/helix?sslmode=verify-full')).toBe(
      'postgresql://u:*****@db:5432/helix?sslmode=verify-full',
    )
    expect(redactUrl('postgres://db/helix?user=u&password=s3cret')).toBe(
      'postgres://db/helix?user=u&password=*****',
    )
    expect(redactUrl('postgres://u@db/helix')).toBe('postgres://u@db/helix')
    expect(redactUrl('not a url //u:s3cret@host')).toBe('not a url //u:*****@host')
  })
})

describe('connection options', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'helix-ssl-'))
    await writeFile(join(dir, 'ca.crt'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('maps libpq sslmode to TLS options', () => {
    const ca = join(dir, 'ca.crt')
    expect(sslOptions(new URL('postgres://h/d'))).toBe(false)
    expect(sslOptions(new URL('postgres://h/d?sslmode=prefer'))).toBe(false)
    expect(sslOptions(new URL('postgres://h/d?sslmode=require'))).toEqual({ rejectUnauthorized: false })
    const requireWithCa = sslOptions(new URL(`postgres://h/d?sslmode=require&sslrootcert=${ca}`))
    expect(requireWithCa).toMatchObject({
      rejectUnauthorized: true,
      ca: expect.stringContaining('BEGIN CERTIFICATE'),
    })
    const verifyCa = sslOptions(new URL('postgres://h/d?sslmode=verify-ca'), ca)
    expect(verifyCa).toMatchObject({
      rejectUnauthorized: true,
      ca: expect.stringContaining('BEGIN CERTIFICATE'),
    })
    // verify-ca checks the chain but not the host name.
    expect(typeof (verifyCa as { checkServerIdentity: unknown }).checkServerIdentity).toBe('function')
    expect(
      (verifyCa as { checkServerIdentity: (h: string, c: never) => unknown }).checkServerIdentity(
        'h',
        {} as never,
      ),
    ).toBeUndefined()
    const verifyFull = sslOptions(new URL('postgres://db.example.com/d?sslmode=verify-full'), ca)
    expect(verifyFull).toMatchObject({
      rejectUnauthorized: true,
      ca: expect.stringContaining('BEGIN CERTIFICATE'),
    })
    expect(verifyFull).not.toHaveProperty('checkServerIdentity')
  })

  it('refuses an unknown sslmode and an unreadable CA file', () => {
    expect(() => sslOptions(new URL('postgres://h/d?sslmode=always'))).toThrow(/Unknown sslmode/)
    let err: unknown
    try {
      sslOptions(new URL('postgres://h/d?sslmode=verify-full'), join(dir, 'missing.crt'))
    } catch (e) {
      err = e
    }
    expect(isHelixError(err) && err.code).toBe('DB_CA_FILE')
  })

  it('builds the pool from helix.yaml and strips ssl parameters from the URL', () => {
    const config = parseConfig({
      database: {
        pool_size: 3,
        statement_timeout_ms: 1234,
        idle_timeout_ms: 567,
        application_name: 'helix-test',
      },
    })
    const settings = poolConfig(
      {
        mode: 'external',
        url: `postgres://u:p@h:5/d?sslmode=verify-full&application_name=x`,
        redactedUrl: '',
        caFile: join(dir, 'ca.crt'),
      },
      config.database,
    )
    expect(settings).toMatchObject({
      max: 3,
      statement_timeout: 1234,
      idleTimeoutMillis: 567,
      application_name: 'helix-test',
    })
    expect(settings.connectionString).toBe('postgres://u:p@h:5/d?application_name=x')
    expect(settings.ssl).toMatchObject({ rejectUnauthorized: true })
  })
})

describe('resolveDatabase', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'helix-resolve-'))
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('uses the external URL when configured, with the CA resolved against the helix directory', async () => {
    const home = new HelixHome(dir)
    const config = parseConfig({
      database: { url: 'postgresql://u:pw@db:5432/h?sslmode=verify-full', ca_file: 'certs/db-ca.crt' },
    })
    expect(databaseMode(config)).toBe('external')
    expect(await resolveDatabase(home, config)).toEqual({
      mode: 'external',
      url: 'postgresql://u:pw@db:5432/h?sslmode=verify-full',
      redactedUrl: 'postgresql://u:*****@db:5432/h?sslmode=verify-full',
      caFile: join(dir, 'certs', 'db-ca.crt'),
    })
    const bad = await rejection(
      resolveDatabase(home, parseConfig({ database: { url: 'mysql://u:pw@db/h' } })),
    )
    expect(isHelixError(bad) && bad.code).toBe('DB_URL_INVALID')
    expect(String((bad as Error).message)).not.toContain('pw@')
  })

  it('reads the embedded server state without starting anything, and says when there is none', async () => {
    const home = new HelixHome(join(dir, 'embedded'))
    const config = parseConfig({})
    expect(databaseMode(config)).toBe('embedded')
    const none = await rejection(resolveDatabase(home, config))
    expect(isHelixError(none) && none.code).toBe('DB_NOT_STARTED')
    await writeEmbeddedState(home, { port: 6543, user: 'helix', password: 'p@ss/word', database: 'helix' })
    const target = await resolveDatabase(home, config)
    expect(target.url).toBe('postgresql://helix:p%40ss%2Fword@127.0.0.1:6543/helix')
    expect(target.redactedUrl).toBe('postgresql://helix:*****@127.0.0.1:6543/helix')
    expect((await readEmbeddedState(home))?.port).toBe(6543)
    await writeFile(join(dir, 'embedded', 'data', 'postgres.json'), '{"port": "x"}')
    const damaged = await rejection(readEmbeddedState(home))
    expect(isHelixError(damaged) && damaged.code).toBe('DB_STATE_INVALID')
    await writeFile(join(dir, 'embedded', 'data', 'postgres.json'), 'not json')
    expect(isHelixError(await rejection(readEmbeddedState(home)))).toBe(true)
  })
})

describe('unreachable databases', () => {
  it('fails with DB_UNREACHABLE, the redacted URL and a hint after retrying', async () => {
    const port = await findFreePort()
    const url = `postgresql://helix:topsecret@127.0.0.1:${port}/helix`
    const target = { mode: 'external' as const, url, redactedUrl: redactUrl(url) }
    const started = Date.now()
    const err = await rejection(
      openDatabase(target, parseConfig({}).database, { attempts: 3, baseDelayMs: 50 }),
    )
    expect(Date.now() - started).toBeGreaterThanOrEqual(150)
    expect(isHelixError(err) && err.code).toBe('DB_UNREACHABLE')
    const e = err as Error & { hint: string; exitCode: number }
    expect(e.message).toContain(`127.0.0.1:${port}`)
    expect(e.message).not.toContain('topsecret')
    expect(e.hint).toMatch(/DATABASE_URL/)
    expect(e.exitCode).toBe(1)
    expect(unreachable({ ...target, mode: 'embedded' }, new Error('x')).hint).toMatch(/helix db start/)
  })
})

describe.each(databaseTargets())('the pool against the %s database', (kind) => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await provisionDatabase(kind)
  })
  afterAll(() => db?.teardown())

  it('applies statement timeout and application_name, runs transactions, reports health, closes twice', async () => {
    const config = parseConfig({
      database: { statement_timeout_ms: 150, application_name: 'helix-pool-test', pool_size: 2 },
    })
    const pool = await openDatabase(db.target, config.database)
    try {
      const { rows } = await pool.query<{ name: string; timeout: string }>(
        "SELECT current_setting('application_name') AS name, current_setting('statement_timeout') AS timeout",
      )
      expect(rows[0]).toEqual({ name: 'helix-pool-test', timeout: '150ms' })
      await expect(pool.query('SELECT pg_sleep(1)')).rejects.toThrow(/statement timeout/)

      await pool.query('CREATE TABLE pool_probe (n int)')
      await expect(
        pool.transaction(async (client) => {
          await client.query('INSERT INTO pool_probe VALUES (1)')
          throw new Error('abort')
        }),
      ).rejects.toThrow('abort')
      expect(
        await pool.transaction(
          async (client) => (await client.query('INSERT INTO pool_probe VALUES (2) RETURNING n')).rows[0].n,
        ),
      ).toBe(2)
      expect((await pool.query('SELECT n FROM pool_probe')).rows).toEqual([{ n: 2 }])
      await pool.query('DROP TABLE pool_probe')

      const health = await pool.health()
      expect(health.ok).toBe(true)
      expect(health.serverVersion).toMatch(/^\d+/)
      expect(pool.idleError).toBeUndefined()
    } finally {
      await pool.close()
      await pool.close()
    }
    const closed = new DatabasePool(db.target, config.database)
    await closed.close()
    const health = await closed.health()
    expect(health.ok).toBe(false)
    expect(health.error).toBeTruthy()
  })

  it('gives up at once on a wrong password (retrying cannot help)', async () => {
    const url = new URL(db.target.url)
    url.password = 'wrong-password'
    const target = { ...db.target, url: url.toString(), redactedUrl: redactUrl(url.toString()) }
    const started = Date.now()
    const err = await rejection(openDatabase(target, db.config.database, { attempts: 5, baseDelayMs: 2000 }))
    expect(Date.now() - started).toBeLessThan(2000)
    expect(isHelixError(err) && err.code).toBe('DB_UNREACHABLE')
    expect((err as Error).message).toMatch(/password authentication failed/)
    expect((err as Error).message).not.toContain('wrong-password')
  })
})
