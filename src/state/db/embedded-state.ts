import { readFile } from 'node:fs/promises'
import { type Static, Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { PRIVATE_MODE, writeFileAtomic } from '../../shared/atomic-write.js'
import { Failure } from '../../shared/errors.js'
import type { HelixHome } from '../../shared/home.js'

/**
 * What `helix db start` records about the embedded server under <dir>/data: the port chosen on first
 * start and the generated password. The file is 0600 because it holds the password.
 */
export const EmbeddedStateSchema = Type.Object({
  /** TCP port on 127.0.0.1, chosen free on first start. */
  port: Type.Integer({ minimum: 1, maximum: 65535 }),
  /** Superuser name inside the cluster (not an OS user). */
  user: Type.String(),
  /** Generated password of that user (256 bits, base64url). */
  password: Type.String(),
  /** Database holding the helix schema. */
  database: Type.String(),
  /** OS user the server runs as when helix runs as root; absent otherwise. */
  os_user: Type.Optional(Type.String()),
  /**
   * Absolute data directory when the cluster lives outside the helix directory (as root, when the
   * server's OS user cannot enter a directory above it); absent: <dir>/data/postgres.
   */
  data_dir: Type.Optional(Type.String()),
  /** Why the cluster lives outside the helix directory (shown by `helix db status`). */
  relocated_because: Type.Optional(Type.String()),
  /** Directory of the copied server binaries the OS user runs, when it cannot reach the installed ones. */
  bin_dir: Type.Optional(Type.String()),
})
export type EmbeddedState = Static<typeof EmbeddedStateSchema>

export function embeddedStateFile(home: HelixHome): string {
  return home.path('data', 'postgres.json')
}

/** The data directory inside the helix directory, where a cluster lives unless its state says otherwise. */
export function embeddedDataDir(home: HelixHome): string {
  return home.path('data', 'postgres')
}

/** Where this helix directory's cluster lives: the recorded data_dir, else <dir>/data/postgres. */
export function clusterDataDir(home: HelixHome, state: EmbeddedState | undefined): string {
  return state?.data_dir ?? embeddedDataDir(home)
}

/** The recorded state, or undefined when the embedded server was never started here. */
export async function readEmbeddedState(home: HelixHome): Promise<EmbeddedState | undefined> {
  const file = embeddedStateFile(home)
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    parsed = undefined
  }
  if (!Value.Check(EmbeddedStateSchema, parsed)) {
    throw new Failure('DB_STATE_INVALID', `${file} is damaged.`, {
      hint: 'Stop the server (`helix db stop`), then restore the file from a backup or delete data/ and start again.',
    })
  }
  return parsed
}

export async function writeEmbeddedState(home: HelixHome, state: EmbeddedState): Promise<void> {
  await writeFileAtomic(embeddedStateFile(home), `${JSON.stringify(state, null, 2)}\n`, PRIVATE_MODE)
}

export function embeddedUrl(state: EmbeddedState): string {
  const user = encodeURIComponent(state.user)
  const password = encodeURIComponent(state.password)
  return `postgresql://${user}:${password}@127.0.0.1:${state.port}/${encodeURIComponent(state.database)}`
}
