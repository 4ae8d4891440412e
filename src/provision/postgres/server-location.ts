import { createHash, randomBytes } from 'node:crypto'
import { chmod, cp, mkdir, readFile, realpath, rename, rm, stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { Failure } from '../../shared/errors.js'
import { exists, type HelixHome } from '../../shared/home.js'
import type { PostgresBinaries } from './binaries.js'
import type { ServerUser } from './server-user.js'

/**
 * Where helix keeps what the embedded server's OS user must reach when it cannot reach the helix
 * directory or the installed binaries (root in a 0700 home such as /root): clusters/<id> for data
 * and postgres/<version> for a copy of the server binaries. HELIX_SYSTEM_DIR moves it.
 */
export const DEFAULT_SYSTEM_DIR = '/var/lib/helix'

export function systemDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.HELIX_SYSTEM_DIR || DEFAULT_SYSTEM_DIR
}

/**
 * The first directory on the way to `path` (inclusive) that `user` cannot enter, judged by the mode
 * bits for owner, group and others; undefined when every one can be entered. `user` without a uid
 * is the current user, who reached `path` to ask.
 */
export async function closedDirectory(path: string, user: ServerUser): Promise<string | undefined> {
  if (user.uid === undefined) return undefined
  const chain: string[] = []
  for (let dir = path; ; dir = dirname(dir)) {
    chain.unshift(dir)
    if (dirname(dir) === dir) break
  }
  for (const dir of chain) {
    const info = await stat(dir)
    const bit = info.uid === user.uid ? 0o100 : info.gid === user.gid ? 0o010 : 0o001
    if ((info.mode & bit) === 0) return dir
  }
  return undefined
}

/** The data directory of a cluster kept under the system directory for this helix directory. */
export async function relocatedDataDir(
  home: HelixHome,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const id = createHash('sha256')
    .update(await realpath(home.root))
    .digest('hex')
    .slice(0, 16)
  return join(systemDir(env), 'clusters', id)
}

/** Makes the system directory and `sub` below it, each enterable by everyone (0755, owned by root). */
async function systemSubdir(sub: string, env: NodeJS.ProcessEnv): Promise<string> {
  const root = systemDir(env)
  const dir = join(root, sub)
  await mkdir(dir, { recursive: true, mode: 0o755 })
  for (const d of [root, dir]) {
    const info = await stat(d)
    if ((info.mode & 0o005) !== 0o005) await chmod(d, (info.mode & 0o7777) | 0o755)
  }
  return dir
}

/** Prepares the parent of a relocated data directory; initdb then creates the directory itself. */
export async function prepareRelocatedParent(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  await systemSubdir('clusters', env)
}

/** The installed distribution's root (bin/, lib/, share/) and its version, from the package beside it. */
async function installedDistribution(bins: PostgresBinaries): Promise<{ root: string; version: string }> {
  const root = dirname(dirname(bins.initdb))
  const version = await readFile(join(dirname(root), 'package.json'), 'utf8')
    .then((text) => String(JSON.parse(text).version))
    .catch(() => createHash('sha256').update(root).digest('hex').slice(0, 12))
  return { root, version }
}

function within(root: string, bins: PostgresBinaries, from: string): PostgresBinaries {
  const move = (path: string) => join(root, path.slice(from.length))
  return { initdb: move(bins.initdb), pg_ctl: move(bins.pg_ctl), postgres: move(bins.postgres) }
}

/**
 * The server binaries as `user` can run them: the installed ones when every directory on their way
 * can be entered, else a copy under <system dir>/postgres/<version> (about 60 MB, made once per
 * version and shared by every helix directory on the machine). The copy is made in a temporary
 * directory and renamed into place, so an interrupted copy is never used.
 */
export async function reachableBinaries(
  bins: PostgresBinaries,
  user: ServerUser,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ binaries: PostgresBinaries; copied: boolean }> {
  const { root, version } = await installedDistribution(bins)
  if (!(await closedDirectory(dirname(bins.initdb), user))) return { binaries: bins, copied: false }
  const parent = await systemSubdir('postgres', env)
  const target = join(parent, version)
  if (!(await exists(join(target, 'bin')))) {
    const temp = `${target}.copy-${randomBytes(4).toString('hex')}`
    try {
      await cp(root, temp, { recursive: true, verbatimSymlinks: true })
      await chmod(temp, 0o755)
      await rename(temp, target)
    } catch (err) {
      await rm(temp, { recursive: true, force: true })
      // A concurrent start may have put the same copy in place first.
      if (!(await exists(join(target, 'bin')))) {
        throw new Failure(
          'DB_BINARIES_COPY_FAILED',
          `Cannot copy the PostgreSQL binaries to ${target}: ${(err as Error).message}`,
          {
            hint: `The server user ${user.name} cannot reach ${root}; free disk space under ${systemDir(env)} (HELIX_SYSTEM_DIR moves it), or install helix where that user can read it.`,
            cause: err,
          },
        )
      }
    }
  }
  return { binaries: within(target, bins, root), copied: true }
}
