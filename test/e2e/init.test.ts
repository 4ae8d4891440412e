import { createHash } from 'node:crypto'
import { readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runHelix, runHelixJson, tempDir } from '../helpers/cli.js'

interface InitJson {
  dir: string
  domain: string
  created: string[]
  kept: string[]
}

async function snapshot(root: string): Promise<Map<string, string>> {
  const files = new Map<string, string>()
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue
    const path = join(entry.parentPath, entry.name)
    files.set(
      path.slice(root.length + 1),
      createHash('sha256')
        .update(await readFile(path))
        .digest('hex'),
    )
  }
  return files
}

describe('helix init (built binary)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let first: InitJson

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    first = await runHelixJson<InitJson>(['init', '--yes', '--dir', join(dir, 'h')])
  })
  afterAll(() => cleanup())

  it('creates the helix directory and reports every file it created', async () => {
    const root = join(dir, 'h')
    expect(first.dir).toBe(root)
    expect(first.kept).toEqual([])
    expect(first.created).toContain('helix.yaml')
    for (const sub of ['certs', 'keys', 'models', 'data'])
      expect((await stat(join(root, sub))).isDirectory()).toBe(true)
    for (const file of first.created) expect((await stat(join(root, file))).isFile()).toBe(true)
    const yaml = await readFile(join(root, 'helix.yaml'), 'utf8')
    expect(yaml).toContain('domain: "localhost"')
    expect(yaml).toMatch(/^# /m)
  })

  it('writes every private key 0600', async () => {
    const root = join(dir, 'h')
    const secrets = [...(await snapshot(root)).keys()].filter(
      (f) => /\.(key|pem|p12)$/.test(f) && !f.endsWith('.crt'),
    )
    for (const file of secrets) {
      if (file.endsWith('.pem') && !file.includes('private')) continue
      expect(((await stat(join(root, file))).mode & 0o777).toString(8), file).toBe('600')
    }
  })

  it('keeps everything byte-identical on a second run and says so', async () => {
    const root = join(dir, 'h')
    const before = await snapshot(root)
    const second = await runHelixJson<InitJson>(['init', '--yes', '--dir', root])
    expect(second.created).toEqual([])
    expect(second.kept.sort()).toEqual([...first.created].sort())
    expect(await snapshot(root)).toEqual(before)
    const human = await runHelix(['init', '--yes', '--dir', root])
    expect(human.exitCode).toBe(0)
    expect(human.stdout).toContain('kept     helix.yaml')
    expect(human.stdout).toContain('Nothing to do')
  })

  it('regenerates with --force', async () => {
    const root = join(dir, 'h')
    const forced = await runHelixJson<InitJson>([
      'init',
      '--yes',
      '--force',
      '--dir',
      root,
      '--domain',
      'api.example.com',
    ])
    expect(forced.created).toContain('helix.yaml')
    expect(forced.domain).toBe('api.example.com')
    expect(await readFile(join(root, 'helix.yaml'), 'utf8')).toContain('domain: "api.example.com"')
  })

  it('takes HELIX_DIR from the environment', async () => {
    const root = join(dir, 'from-env')
    const result = await runHelixJson<InitJson>(['init', '--yes'], { env: { HELIX_DIR: root } })
    expect(result.dir).toBe(root)
  })
})

describe('helix init with bad input', () => {
  let dir: string
  let cleanup: () => Promise<void>
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
  })
  afterAll(() => cleanup())

  it.each([
    [['--domain', 'bad domain!'], 'INVALID_NAME', '--domain'],
    [['--san', 'no spaces allowed'], 'INVALID_NAME', '--san'],
    [['--admin-email', 'not-an-email'], 'INVALID_EMAIL', 'e-mail'],
    [['--key-type', 'dsa'], 'USAGE', 'dsa'],
  ])('%j exits 2 with a clear JSON error and writes nothing', async (args, code, mention) => {
    const root = join(dir, `bad-${code}-${args[0]}`)
    const result = await runHelix(['init', '--yes', '--json', '--dir', root, ...args])
    expect(result.exitCode).toBe(2)
    expect(result.stdout).toBe('')
    const error = JSON.parse(result.stderr).error
    expect(error.code).toBe(code)
    expect(error.message).toContain(mention)
    await expect(stat(root)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('refuses a directory that cannot be created, with advice', async () => {
    await writeFile(join(dir, 'a-file'), 'x')
    const result = await runHelix(['init', '--yes', '--dir', join(dir, 'a-file', 'h')])
    expect(result.exitCode).toBe(2)
    expect(result.stderr).toMatch(/^Error: Cannot use .*a-file is not a directory/m)
    expect(result.stderr).toMatch(/^Hint: /m)
    expect(result.stderr).not.toMatch(/\n\s+at /)
  })

  it('rejects a broken helix.yaml naming the field', async () => {
    const root = join(dir, 'broken')
    await runHelixJson(['init', '--yes', '--dir', root, '--only', 'nginx'])
    await writeFile(join(root, 'helix.yaml'), 'tls:\n  server_days: 1000\n')
    const result = await runHelix(['init', '--yes', '--dir', root])
    expect(result.exitCode).toBe(2)
    expect(result.stderr).toContain('tls.server_days')
  })

  it('shows stack traces only with --verbose', async () => {
    const root = join(dir, 'verbose')
    await runHelixJson(['init', '--yes', '--dir', root, '--only', 'nginx'])
    await writeFile(join(root, 'helix.yaml'), 'server: [1\n')
    const quiet = await runHelix(['init', '--yes', '--dir', root])
    const verbose = await runHelix(['init', '--yes', '--verbose', '--dir', root])
    expect(quiet.stderr).not.toMatch(/\n\s+at /)
    expect(verbose.stderr).toMatch(/\n\s+at /)
  })
})

describe('helix CLI basics', () => {
  it('prints its version quickly from the manifest', async () => {
    const result = await runHelix(['--version'])
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toMatch(/^helix\/\d+\.\d+\.\d+/)
  })

  it('lists topics and commands in help', async () => {
    const result = await runHelix(['--help'])
    expect(result.exitCode).toBe(0)
    expect(result.stdout).toContain('init')
  })
})
