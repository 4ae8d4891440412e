import { readFile } from 'node:fs/promises'
import { Agent, fetch as undiciFetch } from 'undici'
import { fromWireIndexRow } from '../cli/daemon-client.js'
import { discoverGpus, type GpuDiscovery } from '../core/gpu/nvidia-smi.js'
import type { ModelIndexEntry } from '../core/infer/types.js'
import { checkGrpcHealth } from '../grpc/health-client.js'
import { grpcPort } from '../http/serve-config.js'
import { type StatusResult as DatabaseStatus, databaseStatus } from '../provision/postgres/database.js'
import type { HelixConfig } from '../shared/config.js'
import { UserError } from '../shared/errors.js'
import type { HelixHome } from '../shared/home.js'
import { CERT_FILES, type CertFile, certPath } from '../state/certs/cert-files.js'
import { listCertificates } from '../state/certs/list.js'
import type { CertificateSummary } from '../state/certs/summary.js'
import { type DaemonTarget, locateDaemon, readDaemonRecord } from '../state/daemon-record.js'
import { currentKeyAge } from './jwt-key-age.js'

export interface DaemonStatus {
  url: string
  /** How the address was found: --url, the running daemon's record (data/daemon.json), or helix.yaml. */
  source: DaemonTarget['source']
  /** The daemon's pid, from its record. */
  pid?: number
  reachable: boolean
  ready?: boolean
  /** Why the daemon is not ready, as /v2/health/ready says (starting, a model loading, draining). */
  notReadyReason?: string
  version?: string
  uptimeSeconds?: number
  error?: string
}

/** The daemon's gRPC face and its grpc.health.v1 answer. */
export interface GrpcStatus {
  /** host:port as gRPC clients dial it. */
  target: string
  /**
   * record: the running daemon's data/daemon.json; flag: the host of --url with the configured gRPC
   * port (else its port + 1); config: helix.yaml server.host and server.grpc.port (else port + 1).
   */
  source: DaemonTarget['source']
  tls: boolean
  /** The server's readiness as grpc.health.v1 Check answered it (SERVING, NOT_SERVING). */
  status?: string
  /** Why Check got no answer (gRPC status name and message). */
  error?: string
}

export interface StatusReport {
  daemon: DaemonStatus
  /** Absent when the daemon serves no gRPC (its record says so, or server.grpc.enabled is false). */
  grpc?: GrpcStatus
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

/** The helix CA, and the client certificate and key for mTLS; each absent when unreadable. */
async function clientTls(home: HelixHome): Promise<{ ca?: Buffer; cert?: Buffer; key?: Buffer }> {
  const read = (file: CertFile) => readFile(certPath(home, file)).catch(() => undefined)
  const [ca, cert, key] = await Promise.all([
    read(CERT_FILES.caCert),
    read(CERT_FILES.clientCert),
    read(CERT_FILES.clientKey),
  ])
  return { ca, cert, key }
}

/** TLS to our own daemon trusts the helix CA, and presents the client certificate under mTLS. */
async function daemonDispatcher(home: HelixHome, target: DaemonTarget): Promise<Agent | undefined> {
  if (!target.url.startsWith('https:')) return undefined
  const { ca, cert, key } = await clientTls(home)
  return new Agent({ connect: { ca, ...(target.mtls ? { cert, key } : {}) } })
}

/**
 * A --url naming the daemon recorded in data/daemon.json is that daemon: its pid, and whether it asks
 * for client certificates, come from its record rather than from helix.yaml.
 */
async function recordedTarget(home: HelixHome, target: DaemonTarget): Promise<DaemonTarget> {
  if (target.source !== 'flag') return target
  const record = await readDaemonRecord(home)
  return record?.url === target.url ? { ...target, pid: record.pid, mtls: record.mtls } : target
}

/** How long `helix status` waits for each answer. */
const ANSWER_TIMEOUT_MS = 5000

/** Where the gRPC face of the daemon `target` names listens; undefined when it serves none. */
async function grpcTarget(
  options: Pick<StatusOptions, 'home' | 'config'>,
  target: DaemonTarget,
): Promise<Omit<GrpcStatus, 'status' | 'error'> | undefined> {
  const record = await readDaemonRecord(options.home)
  if (record && (target.source === 'record' || record.url === target.url)) {
    return record.grpc ? { target: record.grpc.target, source: 'record', tls: record.grpc.tls } : undefined
  }
  const { server } = options.config
  if (!server.grpc.enabled) return undefined
  if (target.source === 'flag') {
    const url = new URL(target.url)
    const restPort = Number(url.port || (url.protocol === 'https:' ? 443 : 80))
    const port = server.grpc.port || restPort + 1
    return { target: `${url.hostname}:${port}`, source: 'flag', tls: url.protocol === 'https:' }
  }
  const host = new URL(target.url).hostname
  return {
    target: `${host}:${grpcPort(server.port, server.grpc.port)}`,
    source: 'config',
    tls: server.tls || server.mtls,
  }
}

async function grpcStatus(options: StatusOptions, target: DaemonTarget): Promise<GrpcStatus | undefined> {
  let where: Awaited<ReturnType<typeof grpcTarget>>
  try {
    where = await grpcTarget(options, target)
  } catch (err) {
    // helix.yaml names no usable gRPC port (REST on 65535 without server.grpc.port).
    const { server } = options.config
    return { target: `${server.host}:?`, source: 'config', tls: server.tls, error: (err as Error).message }
  }
  if (!where) return undefined
  if (where.target.endsWith(':0')) {
    // server.port 0 (and no gRPC port): each start picks a free port, which only a record would name.
    return { ...where, error: 'no daemon recorded; its gRPC port is picked when it starts' }
  }
  const tls = where.tls ? await clientTls(options.home) : {}
  const health = await checkGrpcHealth(
    where.target,
    {
      tls: where.tls,
      ca: tls.ca,
      ...(target.mtls ? { cert: tls.cert, key: tls.key } : {}),
    },
    ANSWER_TIMEOUT_MS,
  )
  return { ...where, ...(health.status ? { status: health.status } : { error: health.error }) }
}

function uptimeFromMetrics(text: string, now: Date): number | undefined {
  const match = /^helix_process_start_time_seconds\s+([0-9.e+]+)$/m.exec(text)
  return match ? Math.max(0, Math.round(now.getTime() / 1000 - Number(match[1]))) : undefined
}

async function daemonStatus(
  options: StatusOptions,
  target: DaemonTarget,
  now: Date,
): Promise<{ daemon: DaemonStatus; models: ModelIndexEntry[] }> {
  const url = target.url
  const dispatcher = await daemonDispatcher(options.home, target)
  const headers: Record<string, string> = options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}
  const call = (path: string, init: { method?: string; body?: string } = {}) =>
    undiciFetch(`${url}${path}`, {
      ...init,
      headers: { ...headers, ...(init.body ? { 'content-type': 'application/json' } : {}) },
      dispatcher,
      signal: AbortSignal.timeout(ANSWER_TIMEOUT_MS),
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
    const ready = await call('/v2/health/ready')
    daemon.ready = ready.ok
    if (ready.status === 503) {
      const reason = ((await ready.json().catch(() => ({}))) as { reason?: unknown }).reason
      if (typeof reason === 'string') daemon.notReadyReason = reason
    }
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

/** Where the daemon's gRPC face listens, and the certificates a client dials it with. */
export interface GrpcFace {
  target: string
  tls: boolean
  ca?: Buffer
  cert?: Buffer
  key?: Buffer
}

/**
 * The gRPC face of the daemon `options.url` (else the recorded one, else helix.yaml's) names, for
 * the commands that call it (`helix top`); a UserError when it serves none or its port is unknown.
 */
export async function locateGrpcFace(
  options: Omit<StatusOptions, 'apiKey' | 'now' | 'env'>,
): Promise<GrpcFace> {
  const target = await recordedTarget(
    options.home,
    await locateDaemon(options.home, options.config, options.url),
  )
  const where = await grpcTarget(options, target)
  if (!where) {
    throw new UserError('INVALID_INPUT', `The daemon at ${target.url} serves no gRPC.`, {
      hint: 'Start it without --no-grpc (server.grpc.enabled: true in helix.yaml).',
    })
  }
  if (where.target.endsWith(':0')) {
    throw new UserError(
      'INVALID_INPUT',
      'No daemon is recorded, and its gRPC port is picked when it starts.',
      {
        hint: 'Start it with `helix serve` or `helix up`, or pass --url.',
      },
    )
  }
  if (!where.tls) return { target: where.target, tls: false }
  const { ca, cert, key } = await clientTls(options.home)
  return { target: where.target, tls: true, ca, ...(target.mtls ? { cert, key } : {}) }
}

/**
 * `helix status`: what runs and how healthy it is, from the daemon (REST and gRPC faces), the database
 * and the helix directory.
 */
export async function collectStatus(options: StatusOptions): Promise<StatusReport> {
  const now = options.now ?? new Date()
  const target = await recordedTarget(
    options.home,
    await locateDaemon(options.home, options.config, options.url),
  )
  const [daemon, grpc, database, certificates, jwt, gpus] = await Promise.all([
    daemonStatus(options, target, now),
    grpcStatus(options, target),
    databaseStatus(options.home, options.config),
    certificateStatus(options.home, options.config, now),
    jwtStatus(options.home, options.config, now),
    discoverGpus({ env: options.env }),
  ])
  return { ...daemon, ...(grpc ? { grpc } : {}), database, certificates, jwt, gpus }
}
