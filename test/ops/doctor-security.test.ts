import { chmod, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseDocument } from 'yaml'
import type { CheckResult } from '../../src/ops/check.js'
import {
  checkAuthentication,
  checkCors,
  checkDaemonTransport,
  checkFileModes,
  checkNginxTls,
  checkRegistration,
  checkSecrets,
} from '../../src/ops/doctor-security.js'
import { loadConfig } from '../../src/shared/config.js'
import { HelixHome } from '../../src/shared/home.js'
import { writeDaemonRecord } from '../../src/state/daemon-record.js'
import { withDatabase } from '../../src/state/db/connect.js'
import { runHelix, runHelixJson, tempDir } from '../helpers/cli.js'
import { startServe } from '../helpers/serve.js'

interface Report {
  ok: boolean
  checks: CheckResult[]
}

const byName = (checks: CheckResult[], name: string) => checks.find((c) => c.name === name)

/** `helix doctor --security` on a real `helix init` directory, changed one setting at a time. */
describe('helix doctor --security', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let home: HelixHome
  const configFile = () => join(dir, 'helix.yaml')
  async function withConfig(edit: (doc: ReturnType<typeof parseDocument>) => void) {
    const doc = parseDocument(await readFile(configFile(), 'utf8'))
    edit(doc)
    await writeFile(configFile(), doc.toString())
    return loadConfig(home)
  }

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    // As root the embedded PostgreSQL runs as an unprivileged user, who must reach its data.
    await chmod(dir, 0o755)
    home = new HelixHome(dir)
    expect((await runHelix(['init', '--yes', '--dir', dir])).exitCode).toBe(0)
  }, 120_000)
  afterAll(async () => {
    await runHelix(['db', 'stop', '--dir', dir])
    await cleanup()
  })

  it('passes a fresh helix init: authentication on, private files 0600, nginx on TLS 1.2/1.3 only', async () => {
    const report = await runHelixJson<Report>(['doctor', '--security', '--dir', dir])
    const failed = report.checks.filter((c) => c.status === 'fail')
    expect(failed).toEqual([])
    expect(report.ok).toBe(true)
    for (const name of [
      'auth',
      'file-modes',
      'permissions',
      'nginx-tls',
      'transport',
      'cors',
      'secrets',
      'jwt-keys',
    ])
      expect(byName(report.checks, name)?.status, name).toBe('ok')
    // One-box defaults: open registration without mail is a decision to make, not a failure.
    expect(byName(report.checks, 'registration')?.status).toBe('warn')
  })

  it('fails authentication off, and a running daemon started with --no-auth', async () => {
    const config = await withConfig((doc) => doc.setIn(['auth', 'enabled'], false))
    expect((await checkAuthentication(home, config))[0]).toMatchObject({ status: 'fail', name: 'auth' })
    await withConfig((doc) => doc.setIn(['auth', 'enabled'], true))
    const served = await startServe(dir)
    try {
      const checks = await checkAuthentication(home, await loadConfig(home))
      expect(byName(checks, 'no-auth')).toMatchObject({ status: 'fail' })
      expect(byName(checks, 'no-auth')?.message).toContain('--no-auth')
      const cli = await runHelix(['doctor', '--security', '--dir', dir])
      expect(cli.exitCode).toBe(1)
      expect(cli.stdout).toMatch(/no-auth/)
    } finally {
      served.child.kill('SIGTERM')
      await served.child
    }
    // A record of an authenticating daemon is fine.
    await writeDaemonRecord(home, {
      pid: process.pid,
      url: 'http://127.0.0.1:1',
      host: '127.0.0.1',
      port: 1,
      tls: false,
      mtls: false,
      auth: true,
      started_at: new Date().toISOString(),
      version: 'test',
    })
    expect(byName(await checkAuthentication(home, await loadConfig(home)), 'no-auth')).toBeUndefined()
  }, 120_000)

  it('fails a helix.yaml others can write and a private key others can read', async () => {
    await chmod(configFile(), 0o666)
    await chmod(join(home.certsDir, 'ca.key'), 0o644)
    try {
      const [modes, keys] = await checkFileModes(home)
      expect(modes.status).toBe('fail')
      expect(modes.message).toContain('helix.yaml (666)')
      expect(keys.status).toBe('fail')
      expect(keys.message).toContain('ca.key')
    } finally {
      await chmod(configFile(), 0o600)
      await chmod(join(home.certsDir, 'ca.key'), 0o600)
    }
  })

  it('fails an nginx.conf that allows TLS 1.0/1.1 or weak ciphers', async () => {
    const file = join(home.nginxDir, 'nginx.conf')
    const original = await readFile(file, 'utf8')
    try {
      await writeFile(file, original.replace(/ssl_protocols [^;]+;/, 'ssl_protocols TLSv1 TLSv1.1 TLSv1.2;'))
      expect(await checkNginxTls(home)).toMatchObject({
        status: 'fail',
        message: expect.stringContaining('TLSv1, TLSv1.1'),
      })
      await writeFile(
        file,
        original.replace(/ssl_ciphers [^;]+;/, 'ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256:DES-CBC3-SHA;'),
      )
      expect(await checkNginxTls(home)).toMatchObject({
        status: 'fail',
        message: expect.stringContaining('DES-CBC3-SHA'),
      })
    } finally {
      await writeFile(file, original)
    }
    expect((await checkNginxTls(home)).status).toBe('ok')
  })

  it('judges the transport, CORS, registration and secrets settings', async () => {
    const original = await readFile(configFile(), 'utf8')
    try {
      let config = await withConfig((doc) => doc.setIn(['server', 'host'], '0.0.0.0'))
      expect(checkDaemonTransport(config).status).toBe('fail')
      config = await withConfig((doc) => doc.setIn(['server', 'trust_proxy'], ['127.0.0.1']))
      expect(checkDaemonTransport(config).status).toBe('warn')
      config = await withConfig((doc) => doc.setIn(['server', 'tls'], true))
      expect(checkDaemonTransport(config).status).toBe('ok')

      config = await withConfig((doc) => doc.setIn(['auth', 'cors_origins'], ['*']))
      expect(checkCors(config).status).toBe('fail')
      config = await withConfig((doc) => doc.setIn(['auth', 'cors_origins'], ['http://app.example.com']))
      expect(checkCors(config).status).toBe('warn')
      config = await withConfig((doc) => doc.setIn(['auth', 'cors_origins'], ['https://app.example.com']))
      expect(checkCors(config).status).toBe('ok')

      config = await withConfig((doc) => doc.setIn(['mail', 'smtp_url'], 'smtp://127.0.0.1:2525'))
      expect(checkRegistration(config)).toMatchObject({
        status: 'warn',
        message: expect.stringContaining('learns whether the address was new'),
      })
      config = await withConfig((doc) => {
        doc.setIn(['mail', 'smtp_url'], 'smtp://127.0.0.1:2525')
        doc.setIn(['auth', 'require_email_verification'], true)
      })
      expect(checkRegistration(config).status).toBe('ok')

      config = await withConfig((doc) => {
        doc.setIn(['database', 'url'], 'postgres://helix:postgres@db.internal:5432/helix')
        doc.setIn(['alerts', 'slack_webhook_url'], 'https://hooks.slack.com/services/T0/B0/x')
      })
      const secrets = checkSecrets(config, {})
      expect(byName(secrets, 'secrets')).toMatchObject({ status: 'warn' })
      expect(byName(secrets, 'secrets')?.message).toContain('database.url')
      expect(byName(secrets, 'secrets')?.message).toContain('alerts.slack_webhook_url')
      // The password itself is never printed.
      expect(JSON.stringify(secrets)).not.toContain(':postgres@')
      expect(byName(secrets, 'database-password')).toMatchObject({ status: 'fail' })
      const strong = checkSecrets(config, { DATABASE_URL: 'postgres://helix:Zq8v2LmP4xR7tY1w@db:5432/helix' })
      expect(byName(strong, 'database-password')?.status).toBe('ok')
    } finally {
      await writeFile(configFile(), original)
    }
  })

  it('warns about API keys past their rotation age and admin keys nobody uses', async () => {
    expect((await runHelix(['db', 'start', '--dir', dir])).exitCode).toBe(0)
    expect((await runHelix(['db', 'migrate', '--dir', dir])).exitCode).toBe(0)
    const fresh = await runHelixJson<Report>(['doctor', '--security', '--dir', dir])
    expect(byName(fresh.checks, 'api-key-age')?.status).toBe('ok')
    expect(byName(fresh.checks, 'admin-keys')?.status).toBe('ok')
    await runHelixJson(['apikeys', 'create', '--name', 'old-infer', '--scopes', 'infer', '--dir', dir])
    await runHelixJson(['apikeys', 'create', '--name', 'idle-admin', '--scopes', 'admin', '--dir', dir])
    const config = await loadConfig(home)
    await withDatabase(home, config, async (db) => {
      await db.query(`UPDATE api_keys SET created_at = now() - interval '120 days' WHERE name = 'old-infer'`)
      await db.query(`UPDATE api_keys SET created_at = now() - interval '40 days' WHERE name = 'idle-admin'`)
    })
    const report = await runHelixJson<Report>(['doctor', '--security', '--dir', dir])
    expect(byName(report.checks, 'api-key-age')).toMatchObject({ status: 'warn' })
    expect(byName(report.checks, 'api-key-age')?.message).toContain('old-infer')
    expect(byName(report.checks, 'api-key-age')?.message).not.toContain('idle-admin')
    expect(byName(report.checks, 'admin-keys')).toMatchObject({ status: 'warn' })
    expect(byName(report.checks, 'admin-keys')?.message).toContain('idle-admin')
    // Warnings do not fail the command.
    expect(report.ok).toBe(true)
  }, 120_000)
})
