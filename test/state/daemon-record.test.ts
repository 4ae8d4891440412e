import { spawnSync } from 'node:child_process'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/shared/config.js'
import { HelixHome } from '../../src/shared/home.js'
import { processAlive } from '../../src/shared/process-alive.js'
import {
  type DaemonRecord,
  daemonRecordFile,
  locateDaemon,
  readDaemonRecord,
  removeDaemonRecord,
  writeDaemonRecord,
} from '../../src/state/daemon-record.js'
import { tempDir } from '../helpers/cli.js'

/** A pid that no process has any more: a child that has already exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', ''])
  return child.pid as number
}

function record(overrides: Partial<DaemonRecord> = {}): DaemonRecord {
  return {
    pid: process.pid,
    url: 'http://127.0.0.1:18080',
    host: '127.0.0.1',
    port: 18080,
    tls: false,
    mtls: false,
    started_at: '2026-01-31T12:00:00.000Z',
    version: '0.1.0',
    ...overrides,
  }
}

let home: HelixHome
let cleanup: () => Promise<void>
beforeEach(async () => {
  const t = await tempDir('helix-daemon-record-')
  home = new HelixHome(t.dir)
  cleanup = t.cleanup
})
afterEach(() => cleanup())

describe('the daemon record (data/daemon.json)', () => {
  it('is written 0600 and read back while its process lives', async () => {
    await writeDaemonRecord(home, record())
    expect(daemonRecordFile(home)).toBe(home.path('data', 'daemon.json'))
    expect((await stat(daemonRecordFile(home))).mode & 0o777).toBe(0o600)
    expect(await readDaemonRecord(home)).toEqual(record())
    expect(JSON.parse(await readFile(daemonRecordFile(home), 'utf8'))).toEqual(record())
  })

  it('is stale once its process is gone, and absent or damaged files name no daemon', async () => {
    expect(await readDaemonRecord(home)).toBeUndefined()
    await writeDaemonRecord(home, record({ pid: deadPid() }))
    expect(await readDaemonRecord(home)).toBeUndefined()
    await writeFile(daemonRecordFile(home), '{ not json')
    expect(await readDaemonRecord(home)).toBeUndefined()
    await writeFile(daemonRecordFile(home), JSON.stringify({ pid: process.pid, url: 'http://x' }))
    expect(await readDaemonRecord(home)).toBeUndefined()
  })

  it('is removed on shutdown only while it still names the stopping process', async () => {
    await writeDaemonRecord(home, record({ pid: 1 }))
    await removeDaemonRecord(home)
    expect(await stat(daemonRecordFile(home))).toBeDefined()
    await removeDaemonRecord(home, 1)
    await expect(stat(daemonRecordFile(home))).rejects.toMatchObject({ code: 'ENOENT' })
    await removeDaemonRecord(home)
  })

  it('processAlive: this process and pid 1 (another user’s, EPERM, or ours as root) are alive', () => {
    expect(processAlive(process.pid)).toBe(true)
    expect(processAlive(1)).toBe(true)
    expect(processAlive(deadPid())).toBe(false)
  })
})

describe('locateDaemon', () => {
  const config = parseConfig({ server: { port: 8080 } })

  it('an explicit URL wins, then the running daemon, then helix.yaml', async () => {
    await writeDaemonRecord(home, record({ mtls: true }))
    expect(await locateDaemon(home, config, 'http://10.0.0.5:9000/')).toEqual({
      url: 'http://10.0.0.5:9000',
      source: 'flag',
      mtls: false,
    })
    expect(await locateDaemon(home, config)).toEqual({
      url: 'http://127.0.0.1:18080',
      source: 'record',
      pid: process.pid,
      mtls: true,
    })
    await writeDaemonRecord(home, record({ pid: deadPid() }))
    expect(await locateDaemon(home, config)).toEqual({
      url: 'http://127.0.0.1:8080',
      source: 'config',
      mtls: false,
    })
  })

  it('helix.yaml alone: https under tls, wildcard hosts reached on loopback', async () => {
    await mkdir(home.root, { recursive: true })
    const tls = parseConfig({ server: { host: '0.0.0.0', port: 8443, tls: true } })
    expect((await locateDaemon(home, tls)).url).toBe('https://127.0.0.1:8443')
  })
})
