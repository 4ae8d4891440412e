import { readFileSync } from 'node:fs'
import type { ConnectionOptions } from 'node:tls'
import type { PoolConfig } from 'pg'
import type { HelixConfig } from '../../shared/config.js'
import { UserError } from '../../shared/errors.js'
import type { DatabaseTarget } from './resolve.js'

const SSL_PARAMS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'ssl', 'uselibpqcompat']

/**
 * Builds the TLS options from libpq's sslmode (and a CA from database.ca_file or sslrootcert). The
 * URL's ssl parameters are taken out and applied here, because node-postgres would otherwise let
 * them override the options we pass, and it reads `sslmode=require` more loosely than libpq.
 */
export function sslOptions(url: URL, caFile?: string): false | ConnectionOptions {
  const mode = url.searchParams.get('sslmode') ?? 'disable'
  const caPath = caFile ?? url.searchParams.get('sslrootcert') ?? undefined
  const readCa = () => {
    if (!caPath) return undefined
    try {
      return readFileSync(caPath, 'utf8')
    } catch {
      throw new UserError('DB_CA_FILE', `Cannot read the database CA file ${caPath}.`, {
        hint: 'Fix database.ca_file in helix.yaml (or sslrootcert in the URL) to point at the server CA (PEM).',
      })
    }
  }
  switch (mode) {
    case 'disable':
    case 'allow':
    case 'prefer':
      return false
    case 'require':
      // libpq: encrypt, but verify nothing (unless a root cert is given, then behave as verify-ca).
      return caPath
        ? { ca: readCa(), rejectUnauthorized: true, checkServerIdentity: () => undefined }
        : { rejectUnauthorized: false }
    case 'verify-ca':
      return { ca: readCa(), rejectUnauthorized: true, checkServerIdentity: () => undefined }
    case 'verify-full':
      // node-postgres checks the certificate against the host (SNI only for names, never IPs).
      return { ca: readCa(), rejectUnauthorized: true }
    default:
      throw new UserError('DB_URL_INVALID', `Unknown sslmode "${mode}" in the database URL.`, {
        hint: 'Use sslmode=disable, require, verify-ca or verify-full.',
      })
  }
}

/** node-postgres pool settings for a target, from the database section of helix.yaml. */
export function poolConfig(target: DatabaseTarget, settings: HelixConfig['database']): PoolConfig {
  const url = new URL(target.url)
  const ssl = sslOptions(url, target.caFile)
  for (const param of SSL_PARAMS) url.searchParams.delete(param)
  return {
    connectionString: url.toString(),
    ssl,
    max: settings.pool_size,
    idleTimeoutMillis: settings.idle_timeout_ms,
    statement_timeout: settings.statement_timeout_ms,
    application_name: settings.application_name,
    // A server that accepts TCP but never answers must not hang a command forever.
    connectionTimeoutMillis: 10_000,
  }
}
