import { once } from 'node:events'
import { chmod, mkdir, mkdtemp, readdir, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  closedDirectory,
  DEFAULT_SYSTEM_DIR,
  reachableBinaries,
  relocatedDataDir,
  systemDir,
} from '../../../src/provision/postgres/server-location.js'
import { isHelixError } from '../../../src/shared/errors.js'
import { HelixHome } from '../../../src/shared/home.js'

/** A stand-in for nobody: an OS user that owns nothing here and is in no group that does. */
const stranger = { name: 'stranger', uid: 65_000, gid: 65_000 }

describe('where the embedded server keeps what its OS user must reach', () => {
  let dir: string
  let system: string
  const env = () => ({ HELIX_SYSTEM_DIR: system })

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'helix-location-'))
    await chmod(dir, 0o755)
    system = join(dir, 'system')
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('defaults to /var/lib/helix; HELIX_SYSTEM_DIR moves it', () => {
    expect(systemDir({})).toBe(DEFAULT_SYSTEM_DIR)
    expect(systemDir({ HELIX_SYSTEM_DIR: '/srv/x' })).toBe('/srv/x')
  })

  it('finds the first directory an OS user cannot enter, by owner, group and other bits', async () => {
    const closed = join(dir, 'closed')
    await mkdir(join(closed, 'inner'), { recursive: true })
    await chmod(closed, 0o750)
    expect(await closedDirectory(join(closed, 'inner'), stranger)).toBe(closed)
    expect(await closedDirectory(join(closed, 'inner'), {})).toBeUndefined()
    const info = await stat(closed)
    // The same directory is open to its group and to its owner.
    expect(await closedDirectory(closed, { uid: 65_001, gid: info.gid })).toBeUndefined()
    await chmod(closed, 0o070)
    expect(await closedDirectory(closed, { uid: info.uid, gid: 65_001 })).toBe(closed)
    await chmod(closed, 0o755)
    expect(await closedDirectory(join(closed, 'inner'), stranger)).toBeUndefined()
  })

  it('names a relocated cluster after the helix directory, the same id for the same directory', async () => {
    const home = new HelixHome(join(dir, 'h1'))
    await mkdir(home.root)
    const first = await relocatedDataDir(home, env())
    expect(first).toMatch(new RegExp(`^${system}/clusters/[0-9a-f]{16}$`))
    expect(await relocatedDataDir(new HelixHome(join(dir, 'h1', '.')), env())).toBe(first)
    await mkdir(join(dir, 'h2'))
    expect(await relocatedDataDir(new HelixHome(join(dir, 'h2')), env())).not.toBe(first)
  })

  it('copies unreachable binaries once per version, links kept, and uses reachable ones in place', async () => {
    const pkg = join(dir, 'closed-install', 'pkg')
    const native = join(pkg, 'native')
    await mkdir(join(native, 'bin'), { recursive: true })
    await mkdir(join(native, 'lib'))
    await writeFile(join(pkg, 'package.json'), JSON.stringify({ version: '9.9.9' }))
    for (const name of ['initdb', 'pg_ctl', 'postgres'])
      await writeFile(join(native, 'bin', name), '#!/bin/sh\n', { mode: 0o755 })
    await writeFile(join(native, 'lib', 'libpq.so.5.18'), 'lib')
    await symlink('libpq.so.5.18', join(native, 'lib', 'libpq.so.5'))
    const bins = {
      initdb: join(native, 'bin', 'initdb'),
      pg_ctl: join(native, 'bin', 'pg_ctl'),
      postgres: join(native, 'bin', 'postgres'),
    }
    expect(await reachableBinaries(bins, {}, env())).toEqual({ binaries: bins, copied: false })

    await chmod(join(dir, 'closed-install'), 0o700)
    const copy = await reachableBinaries(bins, stranger, env())
    const target = join(system, 'postgres', '9.9.9')
    expect(copy).toEqual({
      copied: true,
      binaries: {
        initdb: join(target, 'bin', 'initdb'),
        pg_ctl: join(target, 'bin', 'pg_ctl'),
        postgres: join(target, 'bin', 'postgres'),
      },
    })
    expect(await readlink(join(target, 'lib', 'libpq.so.5'))).toBe('libpq.so.5.18')
    expect((await stat(join(target, 'bin', 'initdb'))).mode & 0o777).toBe(0o755)
    for (const d of [system, join(system, 'postgres'), target])
      expect((await stat(d)).mode & 0o755).toBe(0o755)
    // The copy is reused: a marker written into it survives a second call.
    await writeFile(join(target, 'marker'), 'kept')
    await reachableBinaries(bins, stranger, env())
    expect((await stat(join(target, 'marker'))).isFile()).toBe(true)
  })

  it('fails with advice and leaves no partial copy when the copy cannot be made', async () => {
    const pkg = join(dir, 'closed-2', 'pkg')
    await mkdir(join(pkg, 'native', 'bin'), { recursive: true })
    await writeFile(join(pkg, 'package.json'), JSON.stringify({ version: '1.0.0' }))
    await writeFile(join(pkg, 'native', 'bin', 'initdb'), '')
    // A socket cannot be copied: the copy fails halfway through.
    const server = createServer().listen(join(pkg, 'native', 'bin', 'socket'))
    await once(server, 'listening')
    await chmod(join(dir, 'closed-2'), 0o700)
    const bins = { initdb: join(pkg, 'native', 'bin', 'initdb'), pg_ctl: '', postgres: '' }
    let error: unknown
    try {
      await reachableBinaries(bins, stranger, env())
    } catch (err) {
      error = err
    } finally {
      server.close()
    }
    expect(isHelixError(error) && error.code).toBe('DB_BINARIES_COPY_FAILED')
    expect(isHelixError(error) && error.hint).toContain('HELIX_SYSTEM_DIR')
    expect(await readdir(join(system, 'postgres'))).not.toContainEqual(expect.stringMatching(/^1\.0\.0/))
  })
})
