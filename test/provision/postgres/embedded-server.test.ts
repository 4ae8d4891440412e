import { appendFile, chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { databaseStatus, startDatabase, stopDatabase } from '../../../src/provision/postgres/database.js'
import {
  destroyEmbedded,
  directorySize,
  runningPid,
  startEmbedded,
  stopEmbedded,
} from '../../../src/provision/postgres/embedded-server.js'
import { relocatedDataDir } from '../../../src/provision/postgres/server-location.js'
import { DEFAULT_SERVER_USER, resolveServerUser } from '../../../src/provision/postgres/server-user.js'
import { parseConfig } from '../../../src/shared/config.js'
import { isHelixError } from '../../../src/shared/errors.js'
import { exists, HelixHome } from '../../../src/shared/home.js'
import { findFreePort, isPortFree } from '../../../src/shared/ports.js'
import { embeddedStateFile, embeddedUrl, readEmbeddedState } from '../../../src/state/db/embedded-state.js'

const isRoot = process.getuid?.() === 0
const config = parseConfig({})

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise
  } catch (err) {
    return isHelixError(err) ? `${err.code}: ${err.message}` : `NOT_HELIX: ${err}`
  }
  return 'NO_ERROR'
}

/** Running, as opposed to gone or exited-but-not-yet-reaped by init (Z: this VM's init reaps lazily). */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z'
}

describe('the embedded server lifecycle', () => {
  let dir: string
  let home: HelixHome

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'helix-embedded-'))
    home = new HelixHome(dir)
  })
  afterAll(async () => {
    await stopEmbedded(home, config).catch(() => undefined)
    await rm(dir, { recursive: true, force: true })
  })

  it('reports stopped before the first start', async () => {
    const status = await databaseStatus(home, config)
    expect(status).toMatchObject({
      mode: 'embedded',
      running: false,
      reachable: false,
      migrations: null,
      dataSizeBytes: 0,
    })
    expect(await stopDatabase(home, config)).toEqual({ mode: 'embedded', stopped: false })
  })

  it('creates the cluster, records port and password 0600, and starts it detached', async () => {
    const result = await startDatabase(home, config)
    expect(result).toMatchObject({ mode: 'embedded', started: true, initialised: true })
    if (result.mode !== 'embedded') throw new Error('embedded expected')
    expect(result.url).toContain('*****')
    const state = await readEmbeddedState(home)
    expect(state?.port).toBe(result.port)
    expect(state?.password).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect((await stat(embeddedStateFile(home))).mode & 0o777).toBe(0o600)
    if (isRoot) {
      expect(result.osUser).toBe(DEFAULT_SERVER_USER)
      const owner = await execa('stat', ['-c', '%U', result.dataDir])
      expect(owner.stdout).toBe(DEFAULT_SERVER_USER)
    }
    // The server is a separate process session: it is not this process's child.
    const ppid = (await readFile(`/proc/${result.pid}/stat`, 'utf8')).split(' ')[3]
    expect(Number(ppid)).not.toBe(process.pid)
    const client = new pg.Client({ connectionString: embeddedUrl(state!) })
    await client.connect()
    const { rows } = await client.query('SELECT current_database() AS db, inet_server_addr()::text AS addr')
    await client.end()
    expect(rows[0]).toEqual({ db: 'helix', addr: '127.0.0.1/32' })
  })

  it('is a no-op when already running', async () => {
    const before = await readEmbeddedState(home)
    const pid = await runningPid(join(dir, 'data', 'postgres'))
    const again = await startEmbedded(home, config)
    expect(again).toMatchObject({ started: false, initialised: false, pid, port: before?.port })
  })

  it('reports running, data size and pending migrations', async () => {
    const status = await databaseStatus(home, config)
    expect(status).toMatchObject({ mode: 'embedded', running: true, reachable: true })
    expect(status.dataSizeBytes).toBeGreaterThan(1_000_000)
    expect(status.migrations?.applied).toEqual([])
    expect(status.migrations?.pending[0]).toBe('0001_auth_schema.sql')
    expect(status.serverVersion).toMatch(/^18/)
  })

  it('stops cleanly with no process left, and restarts on a new port when the old one was taken', async () => {
    const pid = (await runningPid(join(dir, 'data', 'postgres')))!
    const stopped = await stopDatabase(home, config)
    expect(stopped).toEqual({ mode: 'embedded', stopped: true, pid })
    expect(await alive(pid)).toBe(false)
    const children = await execa('pgrep', ['-f', join(dir, 'data', 'postgres')], { reject: false })
    expect(children.stdout).toBe('')
    expect((await databaseStatus(home, config)).running).toBe(false)

    const oldPort = (await readEmbeddedState(home))!.port
    const blocker: Server = createServer()
    await new Promise<void>((ok) => blocker.listen(oldPort, '127.0.0.1', ok))
    try {
      expect(await isPortFree(oldPort)).toBe(false)
      const restarted = await startEmbedded(home, config)
      expect(restarted.started).toBe(true)
      expect(restarted.initialised).toBe(false)
      expect(restarted.port).not.toBe(oldPort)
      expect((await readEmbeddedState(home))?.port).toBe(restarted.port)
    } finally {
      blocker.close()
    }
    await stopEmbedded(home, config)
  })

  it('fails with the server log when PostgreSQL cannot start', async () => {
    const conf = join(dir, 'data', 'postgres', 'postgresql.conf')
    const original = await readFile(conf, 'utf8')
    await appendFile(conf, 'shared_buffers = lots\n')
    try {
      const err = await codeOf(startEmbedded(home, config))
      expect(err).toMatch(/^DB_START_FAILED: .*shared_buffers/)
    } finally {
      await writeFile(conf, original)
    }
  })

  it('refuses a cluster whose recorded port and password are missing', async () => {
    await rm(embeddedStateFile(home))
    expect(await codeOf(startEmbedded(home, config))).toMatch(/^DB_STATE_INVALID/)
  })
})

describe('embedded start refusals', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'helix-embedded-'))
    await chmod(dir, 0o755)
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('refuses a data directory that holds something else, and leaves it alone', async () => {
    const home = new HelixHome(join(dir, 'other'))
    await mkdir(join(dir, 'other', 'data', 'postgres'), { recursive: true })
    await writeFile(join(dir, 'other', 'data', 'postgres', 'notes.txt'), 'mine')
    expect(await codeOf(startEmbedded(home, config))).toMatch(/^DB_DATA_INVALID/)
    expect(await readFile(join(dir, 'other', 'data', 'postgres', 'notes.txt'), 'utf8')).toBe('mine')
  })

  it('two starts at the same moment create one cluster and one server', async () => {
    const home = new HelixHome(join(dir, 'racing'))
    const [a, b] = await Promise.all([startEmbedded(home, config), startEmbedded(home, config)])
    try {
      expect([a.started, b.started].sort()).toEqual([false, true])
      expect(a.pid).toBe(b.pid)
      expect(a.port).toBe(b.port)
    } finally {
      await stopEmbedded(home, config)
    }
  })

  it('accepts an empty data directory left behind', async () => {
    const home = new HelixHome(join(dir, 'mounted'))
    await mkdir(join(dir, 'mounted', 'data', 'postgres'), { recursive: true })
    const started = await startEmbedded(home, config)
    try {
      expect(started).toMatchObject({ started: true, initialised: true })
    } finally {
      await stopEmbedded(home, config)
    }
  })

  it.skipIf(!isRoot)(
    'as root under a closed directory, keeps the cluster under the system directory and leaves permissions alone',
    async () => {
      const system = join(dir, 'system')
      await mkdir(system, { mode: 0o755 })
      await chmod(dir, 0o755)
      process.env.HELIX_SYSTEM_DIR = system
      const closed = join(dir, 'closed')
      const home = new HelixHome(join(closed, 'helix'))
      await mkdir(home.root, { recursive: true })
      await chmod(closed, 0o700)
      try {
        const started = await startEmbedded(home, config)
        expect(started).toMatchObject({ started: true, initialised: true })
        if (started.mode !== 'embedded') throw new Error('embedded expected')
        expect(started.dataDir).toBe(await relocatedDataDir(home))
        expect(started.dataDir.startsWith(join(system, 'clusters'))).toBe(true)
        expect(started.relocatedBecause).toBe(
          `the PostgreSQL user ${DEFAULT_SERVER_USER} cannot enter ${closed}`,
        )
        expect((await stat(closed)).mode & 0o777).toBe(0o700)
        const state = await readEmbeddedState(home)
        expect(state).toMatchObject({
          data_dir: started.dataDir,
          relocated_because: started.relocatedBecause,
        })
        const status = await databaseStatus(home, config)
        expect(status).toMatchObject({
          running: true,
          reachable: true,
          dataDir: started.dataDir,
          relocatedBecause: started.relocatedBecause,
        })
        // A second start finds it running; stop and start again reuse the recorded location.
        expect(await startEmbedded(home, config)).toMatchObject({ started: false, dataDir: started.dataDir })
        await stopEmbedded(home, config)
        const again = await startEmbedded(home, config)
        expect(again).toMatchObject({ started: true, initialised: false, dataDir: started.dataDir })

        const destroyed = await destroyEmbedded(home, config)
        expect(destroyed).toEqual({ mode: 'embedded', stopped: true, removed: started.dataDir })
        expect(await exists(started.dataDir)).toBe(false)
        expect(await readEmbeddedState(home)).toBeUndefined()
        expect(await destroyEmbedded(home, config)).toEqual({ mode: 'embedded', stopped: false })
      } finally {
        await stopEmbedded(home, config).catch(() => undefined)
        delete process.env.HELIX_SYSTEM_DIR
      }
    },
  )

  it.skipIf(!isRoot)(
    'as root, reports a closed parent of a cluster made inside the helix directory',
    async () => {
      const parent = join(dir, 'later-closed')
      const home = new HelixHome(join(parent, 'helix'))
      await mkdir(home.root, { recursive: true })
      await chmod(parent, 0o755)
      await startEmbedded(home, config)
      await stopEmbedded(home, config)
      await chmod(parent, 0o700)
      const err = await codeOf(startEmbedded(home, config))
      expect(err).toMatch(/^DB_DIR_NOT_ACCESSIBLE: .*later-closed/)
    },
  )

  it('measures directories and ignores pid files that name no postgres', async () => {
    expect(await directorySize(join(dir, 'nothing'))).toBe(0)
    const fake = join(dir, 'fake')
    await mkdir(fake)
    await writeFile(join(fake, 'postmaster.pid'), 'garbage\n')
    expect(await runningPid(fake)).toBeUndefined()
    const sleeper = execa('sleep', ['30'])
    try {
      await writeFile(join(fake, 'postmaster.pid'), `${sleeper.pid}\n`)
      expect(await runningPid(fake)).toBeUndefined()
    } finally {
      sleeper.kill()
      await sleeper.catch(() => undefined)
    }
    expect(await findFreePort()).toBeGreaterThan(0)
  })
})

describe('the server OS user', () => {
  it('is the current user when helix is not root', async () => {
    expect(await resolveServerUser(undefined, false)).toEqual({})
  })

  it.skipIf(!isRoot)('refuses a configured user that does not exist', async () => {
    expect(await codeOf(resolveServerUser('no-such-user-helix'))).toMatch(/^DB_OS_USER/)
  })

  it.skipIf(!isRoot)(
    'creates the default system user when missing (useradd --system, no login shell)',
    async () => {
      const name = `helix-pg-t${process.pid % 10000}`
      await execa('userdel', [name], { reject: false })
      try {
        const user = await resolveServerUser(undefined, true, name)
        expect(user.name).toBe(name)
        expect(user.uid).toBeGreaterThan(0)
        const entry = await execa('getent', ['passwd', name])
        expect(entry.stdout).toMatch(/nologin$/)
        expect(await resolveServerUser(undefined, true, name)).toEqual(user)
      } finally {
        await execa('userdel', [name], { reject: false })
      }
    },
  )
})
