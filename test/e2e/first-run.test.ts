import { readdir, readFile, readlink, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ROOT, tempDir } from '../helpers/cli.js'
import { freePortPair } from '../helpers/ports.js'
import { hasTool } from '../helpers/tools.js'

const isRoot = process.getuid?.() === 0

/**
 * The environment a newcomer's shell has: none of the npm_* variables that `npm test` sets for its
 * children (they would change what `npm ci` and `npx` do), and no helix settings.
 */
function newcomerEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(npm_|INIT_CWD$|HELIX_|DATABASE_URL$|REDIS_URL$|NODE_OPTIONS$|VITEST)/i.test(name)) continue
    env[name] = value
  }
  return { ...env, ...extra }
}

/** Every process whose command line or working directory names `path`. */
async function processesUnder(path: string): Promise<string[]> {
  const found: string[] = []
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
    const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => '')
    const state = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
    // Z: exited, only waiting to be reaped; nothing runs any more.
    if (state.slice(state.lastIndexOf(')') + 2)[0] === 'Z') continue
    if (cmdline.includes(path) || cwd.startsWith(path)) found.push(`${pid} ${cmdline.replaceAll('\0', ' ')}`)
  }
  return found
}

/**
 * The README's first command on a fresh clone, exactly as written: `git clone`, `npm ci`, `npx helix up`,
 * with no build step in between, inside a 0700 directory (as root that is /root's situation: the
 * embedded server's OS user cannot enter it). Then the printed curl line, Ctrl-C, and the database
 * commands a user runs next on that clone.
 */
describe.skipIf(!hasTool('git') || !hasTool('curl'))('a fresh clone: npm ci && npx helix up', () => {
  let parent: string
  let cleanup: () => Promise<void>
  let clone: string
  let port: number
  let up: ResultPromise
  let out = ''
  let err = ''

  const helix = (args: string[]) =>
    execa('node', [join(clone, 'bin', 'run.js'), ...args], {
      cwd: clone,
      env: newcomerEnv(),
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
      timeout: 120_000,
    })

  beforeAll(async () => {
    const t = await tempDir('helix-first-run-')
    parent = t.dir
    cleanup = t.cleanup
    expect((await stat(parent)).mode & 0o777).toBe(0o700)
    clone = join(parent, 'x')
    await execa('git', ['clone', '--quiet', ROOT, clone])
    const ci = await execa('npm', ['ci'], {
      cwd: clone,
      env: newcomerEnv(),
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
      timeout: 600_000,
    })
    if (ci.exitCode !== 0) throw new Error(`npm ci failed:\n${ci.stdout}\n${ci.stderr}`)
    port = await freePortPair()
    // Ctrl-C reaches the terminal's whole foreground process group: npx and the helix it runs.
    up = execa('npx', ['helix', 'up'], {
      cwd: clone,
      env: newcomerEnv({ HELIX_PORT: String(port) }),
      extendEnv: false,
      reject: false,
      stdin: 'ignore',
      detached: true,
    })
    up.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk
    })
    up.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk
    })
    const deadline = Date.now() + 180_000
    while (!out.includes('Press Ctrl-C to stop.')) {
      if (Date.now() > deadline || up.exitCode !== null) {
        throw new Error(`npx helix up did not come up:\n${out}\n${err}`)
      }
      await new Promise((r) => setTimeout(r, 200))
    }
  }, 720_000)

  afterAll(async () => {
    if (up?.pid) {
      try {
        process.kill(-up.pid, 'SIGKILL')
      } catch {
        // The group is gone already: the normal case.
      }
    }
    if (clone) {
      await helix(['db', 'destroy', '--yes'])
    }
    await cleanup?.()
  }, 120_000)

  it('prints a curl line that returns a real inference (200)', async () => {
    expect(out).toContain(`Helix is up at http://127.0.0.1:${port}`)
    const curl = /^ {2}(curl .*)$/m.exec(out)?.[1]
    expect(curl).toMatch(/Authorization: Bearer hx_/)
    const result = await execa('sh', ['-c', `${curl} -w '\\n%{http_code}'`], { cwd: clone })
    const [body, status] = String(result.stdout).split('\n')
    expect(status).toBe('200')
    expect(JSON.parse(body)).toMatchObject({ model_name: 'cls', outputs: [{ shape: [1, 2] }] })
  })

  it.skipIf(!isRoot)(
    'as root, keeps the cluster where the server user can reach it, and says so',
    async () => {
      const status = JSON.parse(String((await helix(['db', 'status', '--json'])).stdout))
      expect(status).toMatchObject({ mode: 'embedded', running: true, reachable: true })
      expect(status.relocatedBecause).toBe(`the PostgreSQL user helix-pg cannot enter ${parent}`)
      expect(status.dataDir).toMatch(/^\/var\/lib\/helix\/clusters\/[0-9a-f]{16}$/)
      expect(status.binDir).toMatch(/^\/var\/lib\/helix\/postgres\/[^/]+\/bin$/)
      // The user's directory kept its permissions.
      expect((await stat(parent)).mode & 0o777).toBe(0o700)
    },
  )

  it('Ctrl-C stops the daemon and the database; no process is left', async () => {
    const status = JSON.parse(String((await helix(['db', 'status', '--json'])).stdout))
    process.kill(-up.pid!, 'SIGINT')
    const result = await up
    // npm re-raises the signal its child got once that child has finished; helix itself exits 0.
    expect(result.exitCode === 0 || result.signal === 'SIGINT', `${result.exitCode} ${result.signal}`).toBe(
      true,
    )
    expect(out).toContain('Stopped (SIGINT). The embedded database was stopped too.')
    expect(await processesUnder(clone)).toEqual([])
    expect(await processesUnder(status.dataDir)).toEqual([])
  })

  it('db backup, destroy and restore work on that clone, and leave no cluster behind', async () => {
    expect((await helix(['db', 'start'])).exitCode).toBe(0)
    const before = JSON.parse(String((await helix(['db', 'status', '--json'])).stdout))
    const keys = String((await helix(['apikeys', 'list', '--json'])).stdout)
    const file = join(parent, 'helix.backup')
    const backup = await helix(['db', 'backup', '--out', file])
    expect(backup.exitCode, backup.stderr).toBe(0)

    const refused = await helix(['db', 'destroy'])
    expect(refused.exitCode).toBe(2)
    expect(refused.stderr).toContain('--yes')
    const destroyed = await helix(['db', 'destroy', '--yes', '--json'])
    expect(destroyed.exitCode, destroyed.stderr).toBe(0)
    expect(JSON.parse(String(destroyed.stdout))).toEqual({
      mode: 'embedded',
      stopped: true,
      removed: before.dataDir,
    })
    await expect(stat(before.dataDir)).rejects.toThrow(/ENOENT/)
    expect(await processesUnder(before.dataDir)).toEqual([])

    // A new, empty cluster in the same place takes the backup back.
    expect((await helix(['db', 'start'])).exitCode).toBe(0)
    const restore = await helix(['db', 'restore', file])
    expect(restore.exitCode, restore.stderr).toBe(0)
    expect(String((await helix(['apikeys', 'list', '--json'])).stdout)).toBe(keys)
    const after = JSON.parse(String((await helix(['db', 'destroy', '--yes', '--json'])).stdout))
    expect(after).toEqual({ mode: 'embedded', stopped: true, removed: before.dataDir })
    expect(await processesUnder(before.dataDir)).toEqual([])
  })
})
