import { readFile, stat } from 'node:fs/promises'
import { isIP } from 'node:net'
import { join } from 'node:path'
import type { HelixConfig } from '../shared/config.js'
import type { HelixHome } from '../shared/home.js'
import { readDaemonRecord } from '../state/daemon-record.js'
import { withDatabase } from '../state/db/connect.js'
import { type CheckResult, fail, ok, warn } from './check.js'
import { checkJwtKeyAge, checkKeyPermissions } from './doctor.js'

/**
 * `helix doctor --security`: the settings of an install that weaken it, each with the fix. Failures
 * are what an attacker can use as it stands (authentication off, old TLS versions, readable keys,
 * weak database passwords); warnings are what needs a decision (secrets inline in helix.yaml, keys
 * past their rotation age, an administrator key nobody uses).
 */

/** API keys older than this without an expiry are due for rotation (NIST SP 800-57: a cryptoperiod). */
export const API_KEY_ROTATE_AFTER_DAYS = 90
/** An administrator key unused for this long (or never used and this old) should be revoked. */
export const ADMIN_KEY_IDLE_DAYS = 30

const DAY_MS = 86_400_000
/** Passwords that come with tutorials and images, refused outright as database passwords. */
const DEFAULT_PASSWORDS = new Set([
  'postgres',
  'password',
  'helix',
  'admin',
  'changeme',
  'secret',
  'root',
  '123456',
])

export interface SecurityOptions {
  home: HelixHome
  config: HelixConfig
  env?: NodeJS.ProcessEnv
  now?: Date
  /** Query the database for API keys (false: the file and config checks only). */
  database?: boolean
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'))
}

/** Authentication: off in helix.yaml, or the running daemon started with --no-auth. */
export async function checkAuthentication(home: HelixHome, config: HelixConfig): Promise<CheckResult[]> {
  const checks: CheckResult[] = []
  checks.push(
    config.auth.enabled
      ? ok('auth', 'authentication is on (auth.enabled)')
      : fail(
          'auth',
          'auth.enabled is false: every caller may use every route, admin routes included',
          'Set auth.enabled: true in helix.yaml and restart the daemon.',
        ),
  )
  const record = await readDaemonRecord(home)
  if (record?.auth === false) {
    checks.push(
      fail(
        'no-auth',
        `the running daemon (pid ${record.pid}, ${record.url}) was started without authentication (--no-auth)`,
        'Restart it without --no-auth (`helix serve` authenticates by default).',
      ),
    )
  }
  return checks
}

/** The helix directory and helix.yaml must not be writable by others; private files must be 0600. */
export async function checkFileModes(home: HelixHome): Promise<CheckResult[]> {
  const loose: string[] = []
  for (const path of [home.root, join(home.root, 'helix.yaml'), home.keysDir, home.certsDir, home.dataDir]) {
    const mode = await stat(path).then(
      (s) => s.mode,
      () => undefined,
    )
    if (mode !== undefined && (mode & 0o022) !== 0) loose.push(`${path} (${(mode & 0o777).toString(8)})`)
  }
  const writable =
    loose.length > 0
      ? fail(
          'file-modes',
          `writable by group or others: ${loose.join(', ')}`,
          'Run `chmod go-w` on them: whoever can write them can swap keys, certificates or the config.',
        )
      : ok(
          'file-modes',
          'the helix directory, helix.yaml, keys/, certs/ and data/ are writable by the owner only',
        )
  return [writable, await checkKeyPermissions(home)]
}

/** The TLS protocol versions and ciphers nginx offers, from the rendered nginx.conf (Mozilla intermediate). */
export async function checkNginxTls(home: HelixHome): Promise<CheckResult> {
  const text = await readFile(join(home.nginxDir, 'nginx.conf'), 'utf8').catch(() => undefined)
  if (text === undefined) return ok('nginx-tls', 'no nginx/nginx.conf rendered (nothing to check)')
  const protocols = [...text.matchAll(/^\s*ssl_protocols\s+([^;]+);/gm)].flatMap((m) => m[1].split(/\s+/))
  const old = protocols.filter((p) => /^(SSLv[23]|TLSv1(\.1)?)$/.test(p))
  if (protocols.length === 0)
    return fail(
      'nginx-tls',
      'nginx.conf sets no ssl_protocols',
      'Re-render it with `helix render nginx` (TLS 1.2 and 1.3 only).',
    )
  if (old.length > 0)
    return fail(
      'nginx-tls',
      `nginx.conf allows ${[...new Set(old)].join(', ')}`,
      'Re-render it with `helix render nginx`: TLS 1.2 and 1.3 only (Mozilla intermediate).',
    )
  const ciphers = [...text.matchAll(/^\s*ssl_ciphers\s+([^;]+);/gm)].map((m) => m[1]).join(':')
  const weak = ciphers
    .split(':')
    .filter((c) => /RC4|3DES|DES-CBC|NULL|EXPORT|MD5|aNULL|eNULL/i.test(c) && !c.startsWith('!'))
  if (weak.length > 0)
    return fail(
      'nginx-tls',
      `nginx.conf offers weak ciphers: ${weak.join(', ')}`,
      'Re-render it with `helix render nginx` (Mozilla intermediate cipher list).',
    )
  return ok('nginx-tls', `nginx offers ${[...new Set(protocols)].join(' and ')} only, with no weak ciphers`)
}

/** Plain HTTP on an address other hosts can reach. */
export function checkDaemonTransport(config: HelixConfig): CheckResult {
  if (config.server.tls || isLoopback(config.server.host))
    return ok(
      'transport',
      config.server.tls
        ? 'the daemon serves HTTPS'
        : `the daemon listens on loopback (${config.server.host})`,
    )
  if (config.server.trust_proxy.length > 0)
    return warn(
      'transport',
      `the daemon serves plain HTTP on ${config.server.host} behind a proxy (server.trust_proxy)`,
      'Make sure only the proxy can reach that port (firewall, NetworkPolicy), or turn on server.tls.',
    )
  return fail(
    'transport',
    `the daemon serves plain HTTP on ${config.server.host}: credentials travel in clear text`,
    'Turn on server.tls (or --tls), or listen on 127.0.0.1 behind the generated nginx.',
  )
}

/** Secrets written into helix.yaml instead of a file, and default or short database passwords. */
export function checkSecrets(config: HelixConfig, env: NodeJS.ProcessEnv): CheckResult[] {
  const inline: string[] = []
  if (config.alerts.slack_webhook_url) inline.push('alerts.slack_webhook_url')
  if (config.alerts.pagerduty_routing_key) inline.push('alerts.pagerduty_routing_key')
  const passwordOf = (url: string | undefined) => {
    if (!url) return undefined
    try {
      return decodeURIComponent(new URL(url).password) || undefined
    } catch {
      return undefined
    }
  }
  if (passwordOf(config.database.url)) inline.push('database.url')
  if (passwordOf(config.mail.smtp_url)) inline.push('mail.smtp_url')
  if (passwordOf(config.redis.url)) inline.push('redis.url')
  const checks: CheckResult[] = [
    inline.length > 0
      ? warn(
          'secrets',
          `secrets written in helix.yaml: ${inline.join(', ')}`,
          'Move them to the *_file settings or to the environment (DATABASE_URL, REDIS_URL); helix.yaml is copied into images and backups.',
        )
      : ok('secrets', 'no secrets written in helix.yaml'),
  ]
  const databasePassword = passwordOf(env.DATABASE_URL ?? config.database.url)
  if (databasePassword !== undefined) {
    const weak = DEFAULT_PASSWORDS.has(databasePassword.toLowerCase()) || databasePassword.length < 12
    checks.push(
      weak
        ? fail(
            'database-password',
            'the database password is a well-known default or shorter than 12 characters',
            'Set a long random password: ALTER ROLE … PASSWORD …, then update DATABASE_URL.',
          )
        : ok('database-password', 'the database password is not a known default'),
    )
  }
  return checks
}

/** CORS: an allow-all origin, or origins over plain HTTP other than localhost. */
export function checkCors(config: HelixConfig): CheckResult {
  const origins = config.auth.cors_origins
  if (origins.includes('*') || origins.includes('null'))
    return fail(
      'cors',
      `auth.cors_origins allows ${origins.includes('*') ? 'every origin (*)' : 'the null origin'}`,
      'List the exact origins of your web apps (https://app.example.com).',
    )
  const plain = origins.filter((o) => o.startsWith('http://') && !isLoopback(new URL(o).hostname))
  if (plain.length > 0)
    return warn(
      'cors',
      `auth.cors_origins allows plain-HTTP origins: ${plain.join(', ')}`,
      'Serve those web apps over HTTPS and list the https:// origins.',
    )
  return ok('cors', origins.length > 0 ? `CORS allows ${origins.length} listed origin(s)` : 'CORS is closed')
}

/** Open registration without mail: new accounts are never verified, and registration tells who has one. */
export function checkRegistration(config: HelixConfig): CheckResult {
  if (config.auth.allow_registration && !config.mail.smtp_url)
    return warn(
      'registration',
      'anyone may register and no mail is configured, so addresses are never verified',
      'Configure mail.smtp_url (and auth.require_email_verification), or set auth.allow_registration: false.',
    )
  if (config.auth.allow_registration && !config.auth.require_email_verification)
    return warn(
      'registration',
      'registration is open and sign-in does not wait for a confirmed address: a registrant who signs in with the password they chose learns whether the address was new',
      'Set auth.require_email_verification: true.',
    )
  return ok(
    'registration',
    config.auth.allow_registration ? 'registration is open, with mail' : 'registration is closed',
  )
}

interface KeyRow {
  name: string
  prefix: string
  last4: string
  scopes: string[]
  created_at: Date
  last_used_at: Date | null
}

/** API keys past their rotation age, and administrator keys nobody uses. */
export async function checkApiKeys(home: HelixHome, config: HelixConfig, now: Date): Promise<CheckResult[]> {
  let keys: KeyRow[]
  try {
    keys = await withDatabase(home, config, async (db) => {
      const { rows } = await db.query<KeyRow>(
        `SELECT name, prefix, last4, scopes, created_at, last_used_at FROM api_keys
          WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`,
      )
      return rows
    })
  } catch (err) {
    return [
      warn(
        'api-keys',
        `cannot read the API keys: ${(err as Error).message}`,
        'Start the database (`helix db start`) and run `helix doctor --security` again.',
      ),
    ]
  }
  const label = (k: KeyRow) => `${k.name} (${k.prefix}…${k.last4})`
  const ageDays = (d: Date) => Math.floor((now.getTime() - d.getTime()) / DAY_MS)
  const old = keys.filter((k) => ageDays(k.created_at) > API_KEY_ROTATE_AFTER_DAYS)
  const idleAdmin = keys.filter(
    (k) => k.scopes.includes('admin') && ageDays(k.last_used_at ?? k.created_at) > ADMIN_KEY_IDLE_DAYS,
  )
  return [
    old.length > 0
      ? warn(
          'api-key-age',
          `${old.length} active API key(s) older than ${API_KEY_ROTATE_AFTER_DAYS} days: ${old.map(label).join(', ')}`,
          'Rotate them with `helix apikeys rotate <id>` (the old secret keeps working for auth.api_key_grace_s).',
        )
      : ok(
          'api-key-age',
          `${keys.length} active API key(s), none older than ${API_KEY_ROTATE_AFTER_DAYS} days`,
        ),
    idleAdmin.length > 0
      ? warn(
          'admin-keys',
          `${idleAdmin.length} admin key(s) unused for over ${ADMIN_KEY_IDLE_DAYS} days: ${idleAdmin.map(label).join(', ')}`,
          'Revoke admin keys nobody uses (`helix apikeys revoke <id>`); create one when needed.',
        )
      : ok('admin-keys', 'every admin key has been used recently'),
  ]
}

/** Every security check of an install; `ok` is false when any failed. */
export async function runSecurityChecks(
  options: SecurityOptions,
): Promise<{ ok: boolean; checks: CheckResult[] }> {
  const { home, config } = options
  const now = options.now ?? new Date()
  const groups = await Promise.all([
    checkAuthentication(home, config),
    checkFileModes(home),
    checkNginxTls(home).then((c) => [c]),
    Promise.resolve([checkDaemonTransport(config), checkCors(config), checkRegistration(config)]),
    Promise.resolve(checkSecrets(config, options.env ?? process.env)),
    checkJwtKeyAge(home, config, now).then((c) => [c]),
    options.database === false ? Promise.resolve([]) : checkApiKeys(home, config, now),
  ])
  const checks = groups.flat()
  return { ok: checks.every((c) => c.status !== 'fail'), checks }
}
