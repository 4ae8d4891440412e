import { readFile } from 'node:fs/promises'
import { Agent, fetch as undiciFetch } from 'undici'
import { fromWireIndexRow } from '../cli/daemon-client.js'
import { discoverGpus, type GpuDiscovery } from '../core/gpu/nvidia-smi.js'
import type { ModelIndexEntry } from '../core/infer/types.js'
import { type StatusResult as DatabaseStatus, databaseStatus } from '../provision/postgres/database.js'
import type { HelixConfig } from '../shared/config.js'
import type { HelixHome } from '../shared/home.js'
import { CERT_FILES, type CertFile, certPath } from '../state/certs/cert-files.js'
import { listCertificates } from '../state/certs/list.js'
import type { CertificateSummary } from '../state/certs/summary.js'
import { type DaemonTarget, locateDaemon } from '../state/daemon-record.js'
import { currentKeyAge } from './jwt-key-age.js'

export interface DaemonStatus {
  url: string
  /** How the address was found: --url, the running daemon's record (data/daemon.json), or helix.yaml. */
  source: DaemonTarget['source']
  /** The daemon's pid, from its record. */
  pid?: number
  reachable: boolean
  ready?: boolean
  version?: string
  uptimeSeconds?: number
  error?: string
}

export interface StatusReport {
  daemon: DaemonStatus
  /** From the running daemon's repository index; empty when it is unreachable. */
  models: ModelIndexEntry[]
  database: DatabaseStatus
  certificates: Pick<CertificateSummary, 'role' | 'file' | 'notAfter' | 'daysLeft' | 'warning'>[]
  jwt: { kid?: string; alg?: string; ageDays?: number; overdue?: boolean; error?: string }
  gpus: GpuDiscovery
}

export interface StatusOptions {
  home: HelixHome
  config: HelixConfig
  /** Daemon URL; default: the running daemon's record, else helix.yaml server.host/port/tls. */
  url?: string
  /** API key (or access token) for the daemon's protected routes. */
  apiKey?: string
  now?: Date
  env?: NodeJS.ProcessEnv
}

/** TLS to our own daemon trusts the helix CA, and presents the client certificate under mTLS. */
async function daemonDispatcher(home: HelixHome, target: DaemonTarget): Promise<Agent | undefined> {
  if (!target.url.startsWith('https:')) return undefined
  const read = (file: CertFile) => readFile(certPath(home, file)).catch(() => undefined)
  const [ca, cert, key] = await Promise.all([
    read(CERT_FILES.caCert),
    read(CERT_FILES.clientCert),
    read(CERT_FILES.clientKey),
  ])
  return new Agent({ connect: { ca, ...(target.mtls ? { cert, key } : {}) } })
}

function uptimeFromMetrics(text: string, now: Date): number | undefined {
  const match = /^helix_process_start_time_seconds\s+([0-9.e+]+)$/m.exec(text)
  return match ? Math.max(0, Math.round(now.getTime() / 1000 - Number(match[1]))) : undefined
}

async function daemonStatus(
  options: StatusOptions,
  now: Date,
): Promise<{ daemon: DaemonStatus; models: ModelIndexEntry[] }> {
  const target = await locateDaemon(options.home, options.config, options.url)
  const url = target.url
  const dispatcher = await daemonDispatcher(options.home, target)
  const headers: Record<string, string> = options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}
  const call = (path: string, init: { method?: string; body?: string } = {}) =>
    undiciFetch(`${url}${path}`, {
      ...init,
      headers: { ...headers, ...(init.body ? { 'content-type': 'application/json' } : {}) },
      dispatcher,
      signal: AbortSignal.timeout(5000),
    })
  const daemon: DaemonStatus = {
    url,
    source: target.source,
    ...(target.pid !== undefined ? { pid: target.pid } : {}),
    reachable: false,
  }
  let models: ModelIndexEntry[] = []
  try {
    const meta = await call('/v2')
    daemon.reachable = true
    if (meta.ok) daemon.version = ((await meta.json()) as { version?: string }).version
    daemon.ready = (await call('/v2/health/ready')).ok
    const index = await call('/v2/repository/index', { method: 'POST', body: '{}' })
    if (index.ok) models = ((await index.json()) as Record<string, unknown>[]).map(fromWireIndexRow)
    else
      daemon.error = `repository index answered ${index.status}${index.status === 401 || index.status === 403 ? ' (pass an admin key with --key or HELIX_API_KEY)' : ''}`
    const metrics = await call('/metrics')
    if (metrics.ok) daemon.uptimeSeconds = uptimeFromMetrics(await metrics.text(), now)
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause
    daemon.error = cause?.code ?? cause?.message ?? (err as Error).message
  } finally {
    await dispatcher?.close()
  }
  return { daemon, models }
}

async function jwtStatus(home: HelixHome, config: HelixConfig, now: Date): Promise<StatusReport['jwt']> {
  try {
    const { kid, alg, ageDays } = await currentKeyAge(home, now)
    if (!kid || ageDays === undefined)
      return { error: 'no current JWT signing key (run `helix keys generate`)' }
    return { kid, alg, ageDays, overdue: ageDays > config.jwt.rotate_after_days }
  } catch (err) {
    return { error: (err as Error).message }
  }
}

async function certificateStatus(
  home: HelixHome,
  config: HelixConfig,
  now: Date,
): Promise<StatusReport['certificates']> {
  try {
    const { certificates } = await listCertificates(home, config, now)
    return certificates.map(({ role, file, notAfter, daysLeft, warning }) => ({
      role,
      file,
      notAfter,
      daysLeft,
      ...(warning ? { warning } : {}),
    }))
  } catch {
    return []
  }
}

/** `helix status`: what runs and how healthy it is, from the daemon, the database and the helix directory. */
export async function collectStatus(options: StatusOptions): Promise<StatusReport> {
  const now = options.now ?? new Date()
  const [daemon, database, certificates, jwt, gpus] = await Promise.all([
    daemonStatus(options, now),
    databaseStatus(options.home, options.config),
    certificateStatus(options.home, options.config, now),
    jwtStatus(options.home, options.config, now),
    discoverGpus({ env: options.env }),
  ])
  return { ...daemon, database, certificates, jwt, gpus }
}
