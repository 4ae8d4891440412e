import { execa } from 'execa'
import { Failure } from '../../shared/errors.js'

/** The OS account the embedded server runs as; undefined fields mean "as the current user". */
export interface ServerUser {
  name?: string
  uid?: number
  gid?: number
}

/** Used when helix runs as root and helix.yaml names no database.os_user. */
export const DEFAULT_SERVER_USER = 'helix-pg'

async function lookup(name: string): Promise<ServerUser | undefined> {
  const [uid, gid] = await Promise.all([
    execa('id', ['-u', name], { reject: false }),
    execa('id', ['-g', name], { reject: false }),
  ])
  if (uid.exitCode !== 0 || gid.exitCode !== 0) return undefined
  return { name, uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
}

/**
 * PostgreSQL refuses to run as root. As root, the server runs as `configured` (database.os_user)
 * or as the dedicated system account helix-pg, which is created here (useradd --system, no home,
 * no login shell) the first time it is needed. As any other user, the server runs as that user.
 */
export async function resolveServerUser(
  configured?: string,
  isRoot = process.getuid?.() === 0,
  defaultName = DEFAULT_SERVER_USER,
): Promise<ServerUser> {
  if (!isRoot) return {}
  const name = configured ?? defaultName
  const found = await lookup(name)
  if (found) return found
  if (configured) {
    throw new Failure('DB_OS_USER', `The OS user ${configured} (database.os_user) does not exist.`, {
      hint: `Create it (useradd --system ${configured}) or remove database.os_user to let helix create ${DEFAULT_SERVER_USER}.`,
    })
  }
  const created = await execa(
    'useradd',
    [
      '--system',
      '--user-group',
      '--no-create-home',
      '--home-dir',
      '/nonexistent',
      '--shell',
      '/usr/sbin/nologin',
      name,
    ],
    { reject: false },
  )
  const user = await lookup(name)
  if (!user) {
    throw new Failure(
      'DB_OS_USER',
      `Cannot create the OS user ${name} to run PostgreSQL: ${created.stderr.trim()}`,
      {
        hint: 'PostgreSQL cannot run as root: create an unprivileged user and name it in database.os_user, or run helix as a normal user.',
      },
    )
  }
  return user
}
