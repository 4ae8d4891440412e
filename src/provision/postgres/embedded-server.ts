import { randomBytes } from 'node:crypto'
import {
  appendFile,
  chmod,
  chown,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
} from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { execa } from 'execa'
import pg from 'pg'
import type { HelixConfig } from '../../shared/config.js'
import { Failure, UserError } from '../../shared/errors.js'
import { exists, type HelixHome } from '../../shared/home.js'
import { findFreePort, isPortFree } from '../../shared/ports.js'
import { processAlive } from '../../shared/process-alive.js'
import {
  clusterDataDir,
  type EmbeddedState,
  embeddedDataDir,
  embeddedStateFile,
  embeddedUrl,
  readEmbeddedState,
  writeEmbeddedState,
} from '../../state/db/embedded-state.js'
import { redactUrl } from '../../state/db/redact.js'
import { type PostgresBinaries, postgresBinaries } from './binaries.js'
import {
  closedDirectory,
  prepareRelocatedParent,
  reachableBinaries,
  relocatedDataDir,
} from './server-location.js'
import { resolveServerUser, type ServerUser } from './server-user.js'
import { withStartLock } from './start-lock.js'

export const EMBEDDED_SUPERUSER = 'helix'
export const EMBEDDED_DATABASE = 'helix'

export interface EmbeddedStartResult {
  mode: 'embedded'
  /** False when the server was already running (start is then a no-op). */
  started: boolean
  /** True when this start created the cluster (initdb). */
  initialised: boolean
  port: number
  pid: number
  url: string
  dataDir: string
  osUser?: string
  /** Why the cluster lives outside the helix directory, when it does. */
  relocatedBecause?: string
  /** The copied server binaries, when the OS user cannot run the installed ones. */
  binDir?: string
}

export interface EmbeddedStopResult {
  mode: 'embedded'
  /** False when nothing was running. */
  stopped: boolean
  pid?: number
}

/** The postmaster's pid when a server is running on this data directory, else undefined. */
export async function runningPid(dataDir: string): Promise<number | undefined> {
  let text: string
  try {
    text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8')
  } catch {
    return undefined
  }
  const pid = Number(text.split('\n')[0])
  if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) return undefined
  // A stale pid file after a crash may name a pid that was reused by an unrelated process.
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => 'postgres')
  return cmdline.includes('postgres') ? pid : undefined
}

function asUser(user: ServerUser) {
  return {
    ...(user.uid !== undefined ? { uid: user.uid, gid: user.gid } : {}),
    cwd: '/',
    reject: false,
  } as const
}

/** Where a new cluster goes, and why it is not in the helix directory when it is not. */
interface Placement {
  dataDir: string
  relocatedBecause?: string
}

/**
 * As root, the server's OS user must reach the data directory. Inside the helix directory, that
 * directory and data/ get o+x (enter, not list; secrets in there stay 0600). When a directory above
 * the helix directory is closed to that user (root's 0700 home, say), the cluster goes under the
 * system directory instead (server-location.ts): the user's own permissions are never changed.
 */
async function placeCluster(home: HelixHome, user: ServerUser): Promise<Placement> {
  if (user.uid === undefined) return { dataDir: embeddedDataDir(home) }
  const closed = await closedDirectory(dirname(home.root), user)
  if (!closed) {
    await openHelixDirectory(home)
    return { dataDir: embeddedDataDir(home) }
  }
  await prepareRelocatedParent()
  return {
    dataDir: await relocatedDataDir(home),
    relocatedBecause: `the PostgreSQL user ${user.name} cannot enter ${closed}`,
  }
}

async function openHelixDirectory(home: HelixHome): Promise<void> {
  for (const dir of [home.root, home.dataDir]) {
    const info = await stat(dir)
    if ((info.mode & 0o001) === 0) await chmod(dir, (info.mode & 0o7777) | 0o001)
  }
}

/** A cluster made earlier inside the helix directory must still be reachable by its OS user. */
async function checkReachable(home: HelixHome, user: ServerUser): Promise<void> {
  if (user.uid === undefined) return
  await openHelixDirectory(home)
  const closed = await closedDirectory(dirname(home.root), user)
  if (closed) {
    throw new UserError(
      'DB_DIR_NOT_ACCESSIBLE',
      `The PostgreSQL user ${user.name} cannot enter ${closed}, above the helix directory that holds the cluster.`,
      {
        hint: `This cluster was made when ${closed} was open. Run \`chmod o+x ${closed}\` again, or back it up (\`helix db backup\`), \`helix db destroy --yes\`, and start afresh: a new cluster goes to ${await relocatedDataDir(home)}.`,
      },
    )
  }
}

/** initdb into a temp directory renamed into place only on success: a failed init leaves nothing behind. */
async function initCluster(
  dataDir: string,
  user: ServerUser,
  password: string,
  initdb: string,
): Promise<void> {
  const temp = `${dataDir}.init-${randomBytes(4).toString('hex')}`
  const pwfile = `${temp}.pw`
  await rm(temp, { recursive: true, force: true })
  await mkdir(temp, { mode: 0o700 })
  const handle = await open(pwfile, 'wx', 0o600)
  try {
    await handle.writeFile(`${password}\n`)
  } finally {
    await handle.close()
  }
  try {
    if (user.uid !== undefined) {
      await chown(temp, user.uid, user.gid as number)
      await chown(pwfile, user.uid, user.gid as number)
    }
    const result = await execa(
      initdb,
      [
        `--pgdata=${temp}`,
        `--username=${EMBEDDED_SUPERUSER}`,
        `--pwfile=${pwfile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        '--no-locale',
      ],
      { ...asUser(user), env: { LC_ALL: 'C' } },
    )
    if (result.exitCode !== 0) {
      throw new Failure('DB_INIT_FAILED', `initdb failed: ${lastLines(result.stderr || result.stdout)}`, {
        hint: 'Check free disk space and that the data directory is writable; nothing was left behind.',
      })
    }
    // Loopback TCP only, no Unix socket: nothing outside this machine can connect, and no socket
    // file in /tmp collides with another server (connections use the recorded port).
    await appendFile(
      join(temp, 'postgresql.conf'),
      "\n# helix: embedded server settings\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n",
    )
    await rename(temp, dataDir)
  } catch (err) {
    await rm(temp, { recursive: true, force: true })
    throw err
  } finally {
    await rm(pwfile, { force: true })
  }
}

function lastLines(text: string, count = 3): string {
  return text.trim().split('\n').slice(-count).join(' | ')
}

async function serverLog(dataDir: string): Promise<string> {
  return readFile(join(dataDir, 'server.log'), 'utf8').catch(() => '')
}

async function ensureDatabase(state: EmbeddedState): Promise<void> {
  const client = new pg.Client({ connectionString: embeddedUrl({ ...state, database: 'postgres' }) })
  await client.connect()
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [state.database])
    if (rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(state.database)}`)
  } finally {
    await client.end()
  }
}

/**
 * `helix db start` for the embedded server: creates the cluster on first use (free port and a
 * generated password recorded 0600 in data/postgres.json), then starts it with pg_ctl, which
 * detaches the postmaster (setsid) so it keeps running after the CLI exits. A no-op when it runs.
 */
export async function startEmbedded(home: HelixHome, config: HelixConfig): Promise<EmbeddedStartResult> {
  const state = await readEmbeddedState(home)
  const dataDir = clusterDataDir(home, state)
  const pid = await runningPid(dataDir)
  // The common case, already running, needs no lock and writes nothing.
  if (state && pid) return alreadyRunning(state, pid, dataDir)
  await home.ensureWritable()
  return withStartLock(home, () => startUnlocked(home, config))
}

function alreadyRunning(state: EmbeddedState, pid: number, dataDir: string): EmbeddedStartResult {
  return startResult(state, pid, dataDir, { started: false, initialised: false })
}

function startResult(
  state: EmbeddedState,
  pid: number,
  dataDir: string,
  what: Pick<EmbeddedStartResult, 'started' | 'initialised'>,
): EmbeddedStartResult {
  return {
    mode: 'embedded',
    ...what,
    port: state.port,
    pid,
    url: redactUrl(embeddedUrl(state)),
    dataDir,
    ...(state.os_user ? { osUser: state.os_user } : {}),
    ...locationOf(state),
  }
}

function locationOf(state: EmbeddedState): Pick<EmbeddedStartResult, 'relocatedBecause' | 'binDir'> {
  return {
    ...(state.relocated_because ? { relocatedBecause: state.relocated_because } : {}),
    ...(state.bin_dir ? { binDir: state.bin_dir } : {}),
  }
}

/** The binaries the server's OS user can run, recorded in the state when they are a copy. */
async function serverBinaries(user: ServerUser): Promise<{ binaries: PostgresBinaries; binDir?: string }> {
  const { binaries, copied } = await reachableBinaries(await postgresBinaries(), user)
  return copied ? { binaries, binDir: dirname(binaries.initdb) } : { binaries }
}

async function startUnlocked(home: HelixHome, config: HelixConfig): Promise<EmbeddedStartResult> {
  let state = await readEmbeddedState(home)
  let dataDir = clusterDataDir(home, state)
  // Re-checked under the lock: a concurrent start may have finished while this one waited.
  const pidBefore = await runningPid(dataDir)
  if (state && pidBefore) return alreadyRunning(state, pidBefore, dataDir)
  const user = await resolveServerUser(config.database.os_user)
  const { binaries, binDir } = await serverBinaries(user)

  let initialised = false
  if (!(await exists(join(dataDir, 'PG_VERSION')))) {
    const placement = await placeCluster(home, user)
    dataDir = placement.dataDir
    if (await exists(dataDir)) {
      const entries = await readdir(dataDir)
      if (entries.length > 0) {
        throw new Failure('DB_DATA_INVALID', `${dataDir} exists but holds no PostgreSQL cluster.`, {
          hint: 'Move that directory away (it is not a database helix created), then run `helix db start` again.',
        })
      }
      await rm(dataDir, { recursive: true })
    }
    const password = randomBytes(32).toString('base64url')
    await initCluster(dataDir, user, password, binaries.initdb)
    state = {
      port: await findFreePort(),
      user: EMBEDDED_SUPERUSER,
      password,
      database: EMBEDDED_DATABASE,
      ...(user.name ? { os_user: user.name } : {}),
      ...(placement.relocatedBecause
        ? { data_dir: dataDir, relocated_because: placement.relocatedBecause }
        : {}),
      ...(binDir ? { bin_dir: binDir } : {}),
    }
    await writeEmbeddedState(home, state)
    initialised = true
  } else if (!state) {
    throw new Failure(
      'DB_STATE_INVALID',
      `${dataDir} holds a cluster but data/postgres.json (its port and password) is missing.`,
      {
        hint: 'Restore data/postgres.json from a backup of the helix directory, or move data/postgres away to start afresh.',
      },
    )
  } else {
    if (!state.data_dir) await checkReachable(home, user)
    if (state.bin_dir !== binDir) {
      const { bin_dir: _, ...rest } = state
      state = { ...rest, ...(binDir ? { bin_dir: binDir } : {}) }
      await writeEmbeddedState(home, state)
    }
  }
  if (!(await isPortFree(state.port))) {
    // Another program took the recorded port while the server was stopped: move to a free one.
    state = { ...state, port: await findFreePort() }
    await writeEmbeddedState(home, state)
  }

  const { pg_ctl } = binaries
  const logFile = join(dataDir, 'server.log')
  const pgCtlStart = (port: number) =>
    execa(pg_ctl, ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '60', '-o', `-p ${port}`], {
      ...asUser(user),
      // The postmaster must not hold the CLI's pipes open, or the CLI could not exit before it.
      stdio: 'ignore',
      env: { LC_ALL: 'C' },
    })
  let result = await pgCtlStart(state.port)
  if (result.exitCode !== 0 && !(await isPortFree(state.port))) {
    // Lost a race for the port (another program bound it between the check and the bind): once more on a new one.
    state = { ...state, port: await findFreePort() }
    await writeEmbeddedState(home, state)
    result = await pgCtlStart(state.port)
  }
  const pid = await runningPid(dataDir)
  if (result.exitCode !== 0 || !pid) {
    throw new Failure(
      'DB_START_FAILED',
      `The embedded PostgreSQL did not start: ${lastLines(await serverLog(dataDir))}`,
      {
        hint: `See ${logFile} for the server's own messages.`,
      },
    )
  }
  await ensureDatabase(state)
  return startResult(state, pid, dataDir, { started: true, initialised })
}

/** Stops the embedded server (fast shutdown: sessions end, data is flushed) and waits for it to exit. */
export async function stopEmbedded(home: HelixHome, config: HelixConfig): Promise<EmbeddedStopResult> {
  if (!(await runningPid(clusterDataDir(home, await readEmbeddedState(home))))) {
    return { mode: 'embedded', stopped: false }
  }
  return withStartLock(home, () => stopUnlocked(home, config))
}

async function stopUnlocked(home: HelixHome, config: HelixConfig): Promise<EmbeddedStopResult> {
  const dataDir = clusterDataDir(home, await readEmbeddedState(home))
  const pid = await runningPid(dataDir)
  if (!pid) return { mode: 'embedded', stopped: false }
  const user = await serverUserOf(dataDir, config)
  const { pg_ctl } = (await serverBinaries(user)).binaries
  let result = await execa(pg_ctl, ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '60'], {
    ...asUser(user),
    stdio: 'ignore',
  })
  if (result.exitCode !== 0 && (await runningPid(dataDir))) {
    result = await execa(pg_ctl, ['stop', '-D', dataDir, '-m', 'immediate', '-w', '-t', '30'], {
      ...asUser(user),
      stdio: 'ignore',
    })
  }
  if ((await runningPid(dataDir)) || !(await exited(pid))) {
    throw new Failure('DB_STOP_FAILED', `The embedded PostgreSQL (pid ${pid}) did not stop.`, {
      hint: `See ${join(dataDir, 'server.log')}; as a last resort, kill ${pid}.`,
    })
  }
  return { mode: 'embedded', stopped: true, pid }
}

export interface EmbeddedDestroyResult {
  mode: 'embedded'
  /** True when a server was running and was stopped first. */
  stopped: boolean
  /** The data directory that was removed; undefined when there was no cluster. */
  removed?: string
}

/**
 * `helix db destroy`: stops the server, then removes its data directory (wherever it lives) and
 * data/postgres.json. The directory is first renamed aside, so an interrupted destroy leaves either
 * the whole cluster or none of it.
 */
export async function destroyEmbedded(home: HelixHome, config: HelixConfig): Promise<EmbeddedDestroyResult> {
  const { stopped } = await stopEmbedded(home, config)
  return withStartLock(home, async () => {
    const state = await readEmbeddedState(home)
    const dataDir = clusterDataDir(home, state)
    const there = await exists(dataDir)
    if (there) {
      const aside = `${dataDir}.destroy-${randomBytes(4).toString('hex')}`
      await rename(dataDir, aside)
      await rm(embeddedStateFile(home), { force: true })
      await rm(aside, { recursive: true, force: true })
    } else {
      await rm(embeddedStateFile(home), { force: true })
    }
    return { mode: 'embedded', stopped, ...(there ? { removed: dataDir } : {}) }
  })
}

/**
 * pg_ctl returns once postmaster.pid is gone, which the postmaster removes just before it exits:
 * wait for the process itself, so "stopped" means no process is left.
 */
async function exited(pid: number, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const state = await readFile(`/proc/${pid}/stat`, 'utf8')
      .then((s) => s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3))
      .catch(() => 'gone')
    // Z: exited, waiting for its parent (init) to reap it; nothing runs any more.
    if (state === 'gone' || state === 'Z') return true
    await sleep(20)
  }
  return false
}

/** pg_ctl must run as the data directory's owner (it refuses root); the owner says who that is. */
async function serverUserOf(dataDir: string, config: HelixConfig): Promise<ServerUser> {
  if (process.getuid?.() !== 0) return {}
  const info = await lstat(dataDir)
  if (info.uid !== 0) return { uid: info.uid, gid: info.gid, name: config.database.os_user }
  return resolveServerUser(config.database.os_user)
}

/** Bytes used by the data directory (what `db status` reports). */
export async function directorySize(dir: string): Promise<number> {
  let total = 0
  let entries: import('node:fs').Dirent[]
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch {
    return 0
  }
  for (const entry of entries) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) total += await directorySize(path)
    else
      total += await lstat(path)
        .then((s) => s.size)
        .catch(() => 0)
  }
  return total
}
