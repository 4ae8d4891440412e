import { readdir, readFile, stat, statfs } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { execa } from 'execa'
import { discoverGpus } from '../core/gpu/nvidia-smi.js'
import { checkGrpcHealth } from '../grpc/health-client.js'
import { grpcPort } from '../http/serve-config.js'
import { databaseStatus } from '../provision/postgres/database.js'
import type { HelixConfig } from '../shared/config.js'
import { exists, type HelixHome } from '../shared/home.js'
import { isPortFree } from '../shared/ports.js'
import { CERT_FILES, type CertFile, certPath } from '../state/certs/cert-files.js'
import { listCertificates } from '../state/certs/list.js'
import type { CertificateSummary } from '../state/certs/summary.js'
import { readDaemonRecord } from '../state/daemon-record.js'
import { withDatabase } from '../state/db/connect.js'
import { type CheckResult, fail, ok, warn } from './check.js'
import { checkPytorch } from './doctor-pytorch.js'
import { currentKeyAge } from './jwt-key-age.js'

const GiB = 1024 ** 3

/** Minimum Node.js version (package.json engines). */
const MIN_NODE: [number, number] = [20, 19]

export interface DoctorOptions {
  home: HelixHome
  config: HelixConfig
  now?: Date
  env?: NodeJS.ProcessEnv
  /** Check the database too (default); off for a directory where it does not matter. */
  database?: boolean
  /** Extra checks contributed by other subsystems (database, daemon). */
  extraChecks?: (() => Promise<CheckResult>)[]
}

export interface DoctorReport {
  ok: boolean
  checks: CheckResult[]
}

export function checkNodeVersion(version = process.versions.node): CheckResult {
  const [major, minor] = version.split('.').map(Number)
  const good = major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1])
  return good
    ? ok('node', `Node.js ${version}`)
    : fail(
        'node',
        `Node.js ${version} is too old`,
        `Install Node.js ${MIN_NODE.join('.')} or newer (e.g. with nvm) and run npm ci again.`,
      )
}

/** Which onnxruntime execution providers this install can use (CUDA needs its libraries). */
export async function checkExecutionProviders(): Promise<CheckResult> {
  const require = createRequire(import.meta.url)
  let ortDir: string
  try {
    ortDir = dirname(require.resolve('onnxruntime-node/package.json'))
  } catch {
    return fail('onnxruntime', 'onnxruntime-node is not installed', 'Run `npm ci` in the helix checkout.')
  }
  const binDir = join(ortDir, 'bin', 'napi-v6', process.platform, process.arch)
  const files = await readdir(binDir).catch(() => [] as string[])
  const cuda = files.some((f) => f.startsWith('libonnxruntime_providers_cuda'))
  const providers = ['cpu', 'webgpu', ...(cuda ? ['cuda'] : [])]
  return cuda
    ? ok('onnxruntime', `execution providers: ${providers.join(', ')}`)
    : warn(
        'onnxruntime',
        `execution providers: ${providers.join(', ')} (CUDA provider not installed)`,
        'For NVIDIA GPUs run `npm run install:cuda` after `npm ci` (needs network access to fetch CUDA libraries).',
      )
}

export async function checkNvidia(env: NodeJS.ProcessEnv = process.env): Promise<CheckResult> {
  const { gpus, reason } = await discoverGpus({ env })
  if (gpus.length > 0) {
    return ok(
      'gpu',
      `${gpus.length} GPU(s): ${gpus.map((g) => `${g.name} (${g.memoryFreeMiB} MiB free)`).join(', ')}`,
    )
  }
  if (reason?.includes('not found')) {
    return warn(
      'gpu',
      'no NVIDIA driver found (nvidia-smi missing)',
      'Models run on the CPU under `device: auto`; install the NVIDIA driver to use GPUs.',
    )
  }
  return fail(
    'gpu',
    reason ?? 'nvidia-smi listed no GPUs',
    'Check the NVIDIA driver (reboot after a driver upgrade, `dmesg | grep -i nvrm`), or set `device: cpu` for your models.',
  )
}

export async function checkTool(
  name: string,
  purpose: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<CheckResult> {
  const found = await execa('sh', ['-c', `command -v ${name}`], { reject: false, env })
  return found.exitCode === 0
    ? ok(name, `${name} found at ${String(found.stdout).trim()}`)
    : warn(name, `${name} not found (${purpose})`, `Install it, e.g. \`apt-get install ${name}\`.`)
}

/** Whether the daemon's port is free, taken by a helix daemon, or taken by something else. */
export async function checkPort(host: string, port: number): Promise<CheckResult> {
  if (await isPortFree(port, host)) return ok('port', `${host}:${port} is free for the daemon`)
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/v2`
  const response = await fetch(url, { signal: AbortSignal.timeout(2000) }).catch(() => undefined)
  // With auth on, /v2 answers 401 with helix's realm; without, it names itself.
  const realm = response?.headers.get('www-authenticate') ?? ''
  const body = response?.ok ? ((await response.json().catch(() => ({}))) as { name?: string }) : {}
  if (body.name === 'helix' || realm.includes('realm="helix"')) {
    return ok('port', `${host}:${port} is served by a running helix daemon`)
  }
  return fail(
    'port',
    `${host}:${port} is in use by another program`,
    `Stop it (\`ss -ltnp | grep :${port}\`) or choose another port with --port.`,
  )
}

/**
 * The port of the daemon running on this helix directory (its record in data/daemon.json, wherever
 * `up --port` or `serve --port 0` put it), else the configured port.
 */
export async function checkDaemonPort(home: HelixHome, config: HelixConfig): Promise<CheckResult> {
  const record = await readDaemonRecord(home)
  // A recorded pid whose port is free again was reused by another process: the record is stale.
  if (record && !(await isPortFree(record.port, record.host))) {
    return ok(
      'port',
      `${record.host}:${record.port} is served by the running helix daemon (pid ${record.pid})`,
    )
  }
  return checkPort(config.server.host, config.server.port)
}

/** host:port as a client dials it (loopback for a wildcard host, brackets for IPv6). */
function dialTarget(host: string, port: number): string {
  const dial = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host
  return `${dial.includes(':') ? `[${dial}]` : dial}:${port}`
}

/**
 * Whether the gRPC port helix.yaml gives the daemon (server.grpc.port, else the REST port + 1) is
 * free, or held by a helix gRPC face: one that answers grpc.health.v1 for
 * inference.GRPCInferenceService (dialled with the daemon's TLS settings and the helix CA).
 */
export async function checkGrpcPort(home: HelixHome, config: HelixConfig): Promise<CheckResult> {
  const { server } = config
  if (!server.grpc.enabled) return ok('grpc-port', 'gRPC is off (server.grpc.enabled: false)')
  let port: number
  try {
    port = grpcPort(server.port, server.grpc.port)
  } catch (err) {
    return fail('grpc-port', (err as Error).message, (err as { hint?: string }).hint ?? '')
  }
  if (port === 0) return ok('grpc-port', 'the gRPC port is picked when the daemon starts (port 0)')
  if (port === server.port) {
    return fail(
      'grpc-port',
      `REST and gRPC both ask for port ${port}`,
      'Give gRPC its own port (server.grpc.port, --grpc-port), or turn it off with --no-grpc.',
    )
  }
  if (await isPortFree(port, server.host)) {
    return ok('grpc-port', `${server.host}:${port} is free for the daemon's gRPC face`)
  }
  const tls = server.tls || server.mtls
  const read = (file: CertFile) => readFile(certPath(home, file)).catch(() => undefined)
  const health = await checkGrpcHealth(
    dialTarget(server.host, port),
    {
      tls,
      ...(tls ? { ca: await read(CERT_FILES.caCert) } : {}),
      ...(server.mtls
        ? { cert: await read(CERT_FILES.clientCert), key: await read(CERT_FILES.clientKey) }
        : {}),
      service: 'inference.GRPCInferenceService',
    },
    2000,
  )
  if (health.status) {
    return ok('grpc-port', `${server.host}:${port} is served by a running helix daemon's gRPC face`)
  }
  return fail(
    'grpc-port',
    `${server.host}:${port} is in use by another program`,
    `Stop it (\`ss -ltnp | grep :${port}\`), choose another gRPC port with --grpc-port (server.grpc.port), or turn gRPC off with --no-grpc.`,
  )
}

/**
 * The gRPC port of the daemon running on this helix directory (its record in data/daemon.json), else
 * the configured one.
 */
export async function checkDaemonGrpcPort(home: HelixHome, config: HelixConfig): Promise<CheckResult> {
  const record = await readDaemonRecord(home)
  // As for REST: a recorded pid whose port is free again was reused by another process.
  if (record && !(await isPortFree(record.port, record.host))) {
    if (!record.grpc) {
      return ok('grpc-port', `the running helix daemon (pid ${record.pid}) serves no gRPC (--no-grpc)`)
    }
    if (!(await isPortFree(record.grpc.port, record.host))) {
      return ok(
        'grpc-port',
        `${record.grpc.target} is served by the running helix daemon's gRPC face (pid ${record.pid})`,
      )
    }
  }
  return checkGrpcPort(home, config)
}

async function privateFiles(home: HelixHome): Promise<string[]> {
  const out: string[] = []
  for (const dir of [home.certsDir, home.keysDir, home.dataDir]) {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => [])
    for (const e of entries) {
      if (!e.isFile()) continue
      if (/\.(key|p12)$|private\.pem$|password$/.test(e.name)) out.push(join(e.parentPath, e.name))
    }
  }
  return out
}

export async function checkKeyPermissions(home: HelixHome): Promise<CheckResult> {
  const files = await privateFiles(home)
  const loose: string[] = []
  for (const file of files) {
    if (((await stat(file)).mode & 0o077) !== 0) loose.push(file)
  }
  if (loose.length > 0) {
    return fail(
      'permissions',
      `${loose.length} private file(s) readable by others: ${loose.join(', ')}`,
      `Run \`chmod 600 ${loose.join(' ')}\`.`,
    )
  }
  return ok('permissions', `${files.length} private key file(s) are 0600`)
}

export async function checkCertificates(
  home: HelixHome,
  config: HelixConfig,
  now: Date,
): Promise<CheckResult> {
  let certificates: CertificateSummary[]
  try {
    ;({ certificates } = await listCertificates(home, config, now))
  } catch (err) {
    if ((err as { code?: string }).code === 'CA_MISSING') {
      return warn(
        'certificates',
        'no certificates yet',
        'Run `helix init` (or `helix certs ca` and `helix certs issue server`).',
      )
    }
    return fail(
      'certificates',
      (err as Error).message,
      'Re-issue them with `helix certs rotate` (or `helix init --force`).',
    )
  }
  const soonest = certificates.reduce((a, b) => (b.daysLeft < a.daysLeft ? b : a))
  if (soonest.daysLeft < 0)
    return fail(
      'certificates',
      `${soonest.file} has expired`,
      'Run `helix certs rotate` to re-issue the leaves.',
    )
  if (soonest.daysLeft < config.tls.warn_days) {
    return warn(
      'certificates',
      `${soonest.file} expires in ${soonest.daysLeft} day(s)`,
      'Run `helix certs rotate` soon.',
    )
  }
  return ok(
    'certificates',
    `${certificates.length} certificate(s); the first to expire (${soonest.file}) has ${soonest.daysLeft} days left`,
  )
}

/** Age of the current JWT signing key, from keys/keys.json (written by `helix keys`). */
export async function checkJwtKeyAge(home: HelixHome, config: HelixConfig, now: Date): Promise<CheckResult> {
  let key: Awaited<ReturnType<typeof currentKeyAge>>
  try {
    key = await currentKeyAge(home, now)
  } catch (err) {
    return fail(
      'jwt-keys',
      (err as Error).message,
      'Restore the keys with `helix keys restore <backup>` or regenerate them with `helix keys generate --force`.',
    )
  }
  if (!key.exists)
    return warn('jwt-keys', 'no JWT signing keys yet', 'Run `helix init` or `helix keys generate`.')
  if (key.ageDays === undefined) {
    return fail(
      'jwt-keys',
      'keys/keys.json has no current key',
      'Run `helix keys rotate` to make a new current key.',
    )
  }
  return key.ageDays > config.jwt.rotate_after_days
    ? warn(
        'jwt-keys',
        `current JWT key is ${key.ageDays} days old (rotate after ${config.jwt.rotate_after_days})`,
        'Run `helix keys rotate`.',
      )
    : ok('jwt-keys', `current JWT key is ${key.ageDays} day(s) old`)
}

export async function checkDiskSpace(home: HelixHome): Promise<CheckResult> {
  let path = home.root
  while (!(await exists(path))) path = dirname(path)
  const fs = await statfs(path)
  const free = fs.bavail * fs.bsize
  const text = `${(free / GiB).toFixed(1)} GiB free at ${path}`
  if (free < GiB) return fail('disk', text, 'Free disk space: models, the database and logs need room.')
  if (free < 5 * GiB)
    return warn('disk', text, 'Less than 5 GiB free; large models and database growth may fail.')
  return ok('disk', text)
}

/** Clock skew beyond this breaks JWT exp/nbf checks between replicas (jose allows a small tolerance). */
const MAX_SKEW_S = 5

/** Whether the database answers, its migrations, and the clock skew between it and this machine. */
export async function checkDatabase(home: HelixHome, config: HelixConfig): Promise<CheckResult[]> {
  const status = await databaseStatus(home, config)
  if (!status.reachable) {
    if (status.mode === 'embedded' && !status.running) {
      return [
        fail(
          'database',
          'the embedded PostgreSQL is not running',
          'Start it with `helix db start` (or everything with `helix up`).',
        ),
      ]
    }
    return [
      fail(
        'database',
        `${status.mode} PostgreSQL at ${status.url ?? '?'} is not reachable${status.error ? `: ${status.error}` : ''}`,
        status.mode === 'external'
          ? 'Check DATABASE_URL / database.url, the network and the credentials.'
          : 'Restart it with `helix db stop` then `helix db start`.',
      ),
    ]
  }
  const checks: CheckResult[] = []
  const m = status.migrations
  if (m && m.drift.length > 0) {
    checks.push(
      fail(
        'database',
        `applied migrations were edited afterwards: ${m.drift.join(', ')}`,
        'Restore the original migration files (git checkout migrations/).',
      ),
    )
  } else if (m && m.pending.length > 0) {
    checks.push(warn('database', `${m.pending.length} migration(s) pending`, 'Run `helix db migrate`.'))
  } else {
    checks.push(
      ok(
        'database',
        `${status.mode} PostgreSQL ${status.serverVersion ?? ''} reachable, migrations up to date`.replace(
          '  ',
          ' ',
        ),
      ),
    )
  }
  const skew = await withDatabase(home, config, async (db) => {
    const before = Date.now()
    const { rows } = await db.query<{ now: Date }>('SELECT now() AS now')
    return Math.abs(rows[0].now.getTime() - (before + Date.now()) / 2) / 1000
  }).catch(() => undefined)
  if (skew !== undefined) {
    checks.push(
      skew > MAX_SKEW_S
        ? warn(
            'clock',
            `clock differs from the database server by ${skew.toFixed(1)} s`,
            'Enable time synchronisation (chrony or systemd-timesyncd) on both machines.',
          )
        : ok('clock', `clock within ${skew.toFixed(2)} s of the database server`),
    )
  }
  return checks
}

/** Runs every check; `ok` is false when any check failed (warnings do not fail). */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const { home, config } = options
  const now = options.now ?? new Date()
  const env = options.env ?? process.env
  const checks = await Promise.all([
    Promise.resolve(checkNodeVersion()),
    checkExecutionProviders(),
    checkNvidia(env),
    checkTool('nginx', 'needed to run the generated nginx.conf', env),
    checkTool('openssl', 'useful to inspect certificates', env),
    checkDaemonPort(home, config),
    checkDaemonGrpcPort(home, config),
    checkKeyPermissions(home),
    checkCertificates(home, config, now),
    checkJwtKeyAge(home, config, now),
    checkDiskSpace(home),
    checkPytorch(home, config),
    ...(options.extraChecks ?? []).map((c) => c()),
  ])
  if (options.database !== false) checks.push(...(await checkDatabase(home, config)))
  return { ok: checks.every((c) => c.status !== 'fail'), checks }
}
