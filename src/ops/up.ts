import { join } from 'node:path'
import { cliCreateKey, cliListKeys } from '../cli/admin.js'
import { scanRepository } from '../core/infer/repository.js'
import { addModel } from '../core/infer/repository-admin.js'
import { repositoryDir } from '../core/infer/repository-location.js'
import { initHelixDirectory } from '../provision/init.js'
import { startDatabase, stopDatabase } from '../provision/postgres/database.js'
import { commitFiles } from '../shared/atomic-write.js'
import { loadConfig } from '../shared/config.js'
import type { LogFormat } from '../shared/config-schema.js'
import { exists, type HelixHome } from '../shared/home.js'
import { CERT_FILES, certPath } from '../state/certs/cert-files.js'
import { runMigrations } from '../state/db/connect.js'
import { DEMO_MODEL, demoModelPath, demoRequest } from './demo-model.js'
import { serveDaemon } from './serve.js'

const STOP_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT']

/** Name of the API key `helix up` creates for the administrator. */
export const ADMIN_KEY_NAME = 'admin'

export interface UpOptions {
  host?: string
  port?: number
  tls?: boolean
  /** pretty or json log lines (default: pretty on a terminal). */
  logFormat?: LogFormat
  /** Signals that stop the service (tests send SIGTERM). */
  signals?: NodeJS.Signals[]
  /** false: no gRPC face (--no-grpc). */
  grpc?: boolean
  /** Port of the gRPC face (--grpc-port). */
  grpcPort?: number
}

/** What `helix up` tells the user once the daemon listens. */
export interface UpReady {
  url: string
  /** The admin API key, only on the run that created it (it is stored hashed and never shown again). */
  adminKey?: string
  adminKeyId: string
  adminKeyCreated: boolean
  /** True when this run created the helix directory. */
  initialised: boolean
  /** True when this run started the embedded database (and so stops it on exit). */
  databaseStarted: boolean
  /** Migrations this run applied. */
  migrationsApplied: string[]
  /** The demo model, when this run added it to an empty repository. */
  modelAdded?: string
  /** A KServe v2 request for the demo model, and a curl line that sends it. */
  requestFile: string
  curl: string
  /** Where the gRPC face listens (host:port), unless it is off. */
  grpc?: string
}

export interface UpResult extends UpReady {
  signal: NodeJS.Signals
}

function curlLine(
  url: string,
  requestFile: string,
  key: string | undefined,
  tls: boolean,
  home: HelixHome,
): string {
  const auth = key ?? '$HELIX_API_KEY'
  const cacert = tls ? ` --cacert ${certPath(home, CERT_FILES.caCert)}` : ''
  return `curl -s${cacert} -H "Authorization: Bearer ${auth}" -H 'Content-Type: application/json' --data @${requestFile} ${url}/v2/models/${DEMO_MODEL}/infer`
}

/**
 * `helix up`: everything from a fresh clone to a serving daemon, without questions. Init with defaults
 * when the helix directory is missing, start the embedded database (or use the external one), migrate,
 * put the demo model in an empty repository, create the admin API key once, and serve until a signal.
 * The embedded database is stopped again on exit only if this run started it.
 */
export async function up(
  home: HelixHome,
  options: UpOptions,
  onReady: (ready: UpReady) => void,
): Promise<UpResult> {
  const initialised = !(await home.isInitialised())
  if (initialised) await initHelixDirectory(home, {})
  const flags = {
    host: options.host,
    port: options.port,
    tls: options.tls,
    logFormat: options.logFormat,
    grpc: options.grpc,
    grpcPort: options.grpcPort,
  }
  const config = await loadConfig(home)
  const database = await startDatabase(home, config)
  const databaseStarted = database.mode === 'embedded' && database.started
  try {
    const { applied } = await runMigrations(home, config, false)

    const models = repositoryDir(home, config)
    let modelAdded: string | undefined
    if ((await scanRepository(models)).length === 0) {
      await addModel(models, DEMO_MODEL, demoModelPath())
      modelAdded = DEMO_MODEL
    }
    const requestFile = join(home.dataDir, 'demo-request.json')
    if (!(await exists(requestFile)))
      await commitFiles([{ path: requestFile, data: JSON.stringify(demoRequest()) }])

    const existing = (await cliListKeys(home, config)).find(
      (k) => k.name === ADMIN_KEY_NAME && k.scopes.includes('admin'),
    )
    const created = existing
      ? undefined
      : await cliCreateKey(home, config, { name: ADMIN_KEY_NAME, scopes: ['admin'] })
    const adminKeyId = (existing ?? created)!.id

    let ready: UpReady | undefined
    let grpc: string | undefined
    const { signal } = await serveDaemon(home, flags, {
      onListening: (_url, faces) => {
        grpc = faces.find((f) => f.name === 'gRPC')?.address
      },
      signals: options.signals,
      // Logs go to stderr so the summary on stdout stays readable; on a terminal they are short human
      // lines, and once the summary is printed only warnings and errors, so the curl line stays in view.
      logDestination: 2,
      quietAfterReady: true,
      onReady: (url) => {
        ready = {
          url,
          ...(created ? { adminKey: created.key } : {}),
          adminKeyId,
          adminKeyCreated: Boolean(created),
          initialised,
          databaseStarted,
          migrationsApplied: applied,
          ...(modelAdded ? { modelAdded } : {}),
          requestFile,
          curl: curlLine(url, requestFile, created?.key, url.startsWith('https:'), home),
          ...(grpc ? { grpc } : {}),
        }
        onReady(ready)
      },
    })
    return { ...ready!, signal }
  } finally {
    if (databaseStarted) {
      // Another Ctrl-C now must not leave the database running behind us.
      const hold = () => {}
      for (const s of options.signals ?? STOP_SIGNALS) process.on(s, hold)
      try {
        await stopDatabase(home, config)
      } finally {
        for (const s of options.signals ?? STOP_SIGNALS) process.removeListener(s, hold)
      }
    }
  }
}
