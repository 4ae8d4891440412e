import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { withStartLock } from '../../../src/provision/postgres/start-lock.js'
import { isHelixError } from '../../../src/shared/errors.js'
import { HelixHome } from '../../../src/shared/home.js'

describe('the start/stop lock', () => {
  let dir: string
  let home: HelixHome
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'helix-lock-'))
    home = new HelixHome(dir)
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('runs critical sections one at a time and cleans up after itself', async () => {
    const events: string[] = []
    const section = (name: string) =>
      withStartLock(home, async () => {
        events.push(`${name}:in`)
        await new Promise((r) => setTimeout(r, 150))
        events.push(`${name}:out`)
        return name
      })
    expect(await Promise.all([section('a'), section('b')])).toEqual(['a', 'b'])
    // Never interleaved: every "in" is followed by its own "out".
    for (let i = 0; i < events.length; i += 2) expect(events[i + 1]).toBe(events[i].replace(':in', ':out'))
    expect(await readdir(join(dir, 'data'))).toEqual([])
  })

  it('takes over a lock left by a process that no longer runs', async () => {
    await mkdir(join(dir, 'data'), { recursive: true })
    await writeFile(join(dir, 'data', 'postgres.lock'), '999999999')
    expect(await withStartLock(home, async () => 'ok')).toBe('ok')
    await writeFile(join(dir, 'data', 'postgres.lock'), '')
    expect(await withStartLock(home, async () => 'ok again')).toBe('ok again')
  })

  it('gives up with DB_BUSY while a live process holds it', async () => {
    await writeFile(join(dir, 'data', 'postgres.lock'), String(process.ppid))
    let err: unknown
    try {
      await withStartLock(home, async () => 'never', 300)
    } catch (e) {
      err = e
    }
    expect(isHelixError(err) && err.code).toBe('DB_BUSY')
    expect(String((err as Error).message)).toContain(String(process.ppid))
    await rm(join(dir, 'data', 'postgres.lock'))
  })
})
