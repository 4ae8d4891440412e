import { chmod, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HELIX_BIN, ROOT, tempDir } from '../helpers/cli.js'
import { freePortPair } from '../helpers/ports.js'
import { hasTool } from '../helpers/tools.js'

/** The commands of every ```sh block of a markdown page, one per line, in order. */
export async function shellCommands(page: string): Promise<string[]> {
  const text = await readFile(join(ROOT, 'docs', page), 'utf8')
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) =>
    m[1].split('\n').filter((l) => l.trim() !== ''),
  )
}

/**
 * Docs that rot are worse than none: every command of the getting-started and operations pages runs
 * here, in order, as a new user would type it, in a fresh directory. Only what a test cannot do as
 * written is adapted: `npx helix` runs the built binary, node_modules/ is this checkout's, the port is
 * a free one instead of 8080 (Prometheus and Alertmanager get free ones too), and `npm ci` is what CI
 * itself runs before the tests.
 */
describe.skipIf(!hasTool('curl') || !hasTool('nginx'))('docs: every sh command runs', () => {
  let cwd: string
  let cleanup: () => Promise<void>
  let port: number
  let monitorPorts: number[]
  let up: ResultPromise | undefined
  let upOutput = ''
  const env: Record<string, string> = {}

  beforeAll(async () => {
    ;({ dir: cwd, cleanup } = await tempDir('helix-docs-'))
    // As root the embedded PostgreSQL runs as an unprivileged user who must reach ./.helix/data.
    await chmod(cwd, 0o755)
    port = await freePortPair()
    monitorPorts = [await freePortPair(), await freePortPair()]
    Object.assign(env, { HELIX_PORT: String(port), HELIX_DIR: '', PATH: process.env.PATH ?? '' })
  })
  afterAll(async () => {
    // Prometheus and Alertmanager of `helix monitor up` run in the background: stop them even when a step failed.
    await execa('node', [HELIX_BIN, 'monitor', 'down'], {
      cwd,
      env: { ...env, HELIX_DIR: undefined },
      reject: false,
    })
    if (up && up.exitCode === null) {
      up.kill('SIGINT')
      await up
    }
    await cleanup()
  })

  function adapt(line: string): string {
    return line
      .replace(
        /^npx helix monitor up$/,
        `npx helix monitor up --prometheus-port ${monitorPorts[0]} --alertmanager-port ${monitorPorts[1]}`,
      )
      .replaceAll('npx helix', `node ${HELIX_BIN}`)
      .replaceAll(' node_modules/', ` ${ROOT}/node_modules/`)
      .replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`)
  }

  async function run(line: string): Promise<string> {
    if (line === 'npm ci') return ''
    const exported = /^export (\w+)=(.*)$/.exec(line)
    if (exported) {
      const [, name, value] = exported
      // The page tells the reader to paste the key `helix up` printed.
      env[name] =
        name === 'HELIX_API_KEY'
          ? (/(hx_[A-Za-z0-9]{20,})/.exec(upOutput)?.[1] ?? '')
          : value.replace(/^'|'$/g, '')
      expect(env[name], line).not.toBe('')
      return ''
    }
    if (line === 'npx helix up') {
      up = execa('node', [HELIX_BIN, 'up'], {
        cwd,
        env: { ...env, HELIX_DIR: undefined },
        extendEnv: true,
        reject: false,
        stdin: 'ignore',
      })
      up.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        upOutput += chunk
      })
      const deadline = Date.now() + 90_000
      while (!upOutput.includes('Press Ctrl-C to stop.')) {
        if (Date.now() > deadline || up.exitCode !== null) throw new Error(`helix up failed: ${upOutput}`)
        await new Promise((r) => setTimeout(r, 100))
      }
      return upOutput
    }
    const result = await execa('sh', ['-c', adapt(line)], {
      cwd,
      env: { ...env, HELIX_DIR: undefined },
      extendEnv: true,
      reject: false,
    })
    expect(result.exitCode, `${line}\n${result.stdout}\n${result.stderr}`).toBe(0)
    return `${result.stdout}\n${result.stderr}`
  }

  it('getting-started.md', async () => {
    const outputs = new Map<string, string>()
    for (const line of await shellCommands('getting-started.md')) outputs.set(line, await run(line))
    const curl = [...outputs.entries()].find(([l]) => l.startsWith('curl'))?.[1] ?? ''
    expect(JSON.parse(curl.trim()).model_name).toBe('cls')
    const list = [...outputs.entries()].find(([l]) => l.includes('models list'))?.[1] ?? ''
    expect(list).toMatch(/direction\s+1\s+READY/)
    const bench = [...outputs.entries()].find(([l]) => l.includes('helix bench'))?.[1] ?? ''
    expect(bench).toMatch(/p99/i)
  }, 300_000)

  it('operations/README.md', async () => {
    expect(up?.exitCode).toBeNull()
    for (const line of await shellCommands('operations/README.md')) await run(line)
  }, 480_000)
})
