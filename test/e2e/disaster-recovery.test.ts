import { copyFile, cp, mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HELIX_BIN, runHelix, runHelixJson, tempDir } from '../helpers/cli.js'
import { CLS_MODEL_PATH } from '../helpers/onnx-models.js'
import { type Served, startServe } from '../helpers/serve.js'

/**
 * The disaster-recovery drill of docs/operations: back up the database, the JWT keys, helix.yaml,
 * the certificates and the models; lose the whole helix directory and its embedded database; restore
 * into a fresh directory; the same users, API keys, tokens, models and audit chain work. The time from
 * the loss to a serving daemon is the drill's recovery time (printed; docs/operations records it).
 */

const PASSPHRASE = 'a drill passphrase that is long enough'
const PASSWORD = 'correct horse battery staple'
const shape = [1, 3, 48, 192]
const input = Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i / 17))

async function serve(dir: string): Promise<Served> {
  const served = await startServe(dir, ['--no-grpc'], { auth: true, timeoutMs: 90_000 })
  for (let i = 0; i < 600; i++) {
    if ((await fetch(`${served.url}/v2/health/ready`).catch(() => undefined))?.ok) return served
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`helix serve never became ready:\n${served.output()}`)
}

async function stop(served: Served | undefined): Promise<void> {
  if (!served) return
  served.child.kill('SIGTERM')
  await served.child
}

async function helix(args: string[], stdin?: string): Promise<string> {
  const result = await execa('node', [HELIX_BIN, ...args], {
    reject: false,
    env: { HELIX_DIR: undefined, HELIX_BACKUP_PASSPHRASE: PASSPHRASE },
    ...(stdin === undefined ? { stdin: 'ignore' as const } : { input: stdin }),
    timeout: 120_000,
  })
  if (result.exitCode !== 0)
    throw new Error(`helix ${args.join(' ')} exited ${result.exitCode}: ${result.stderr}`)
  return String(result.stdout)
}

async function infer(url: string, key: string): Promise<number[]> {
  const response = await fetch(`${url}/v2/models/cls/infer`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape, data: input }] }),
  })
  expect(response.status, await response.clone().text()).toBe(200)
  return ((await response.json()) as { outputs: { data: number[] }[] }).outputs[0].data
}

async function login(url: string): Promise<Response> {
  return fetch(`${url}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: 'ops@example.test', password: PASSWORD }),
  })
}

describe('disaster recovery drill', () => {
  let root: string
  let cleanup: () => Promise<void>
  const running: Served[] = []
  beforeAll(async () => {
    ;({ dir: root, cleanup } = await tempDir('helix-dr-'))
  })
  afterAll(async () => {
    for (const served of running) await stop(served).catch(() => {})
    for (const dir of ['A', 'B']) await runHelix(['db', 'stop', '--dir', join(root, dir)]).catch(() => {})
    await cleanup?.()
  })

  it('a fresh directory restored from the backups serves the same users, keys, tokens, models and audit chain', async () => {
    const A = join(root, 'A')
    const B = join(root, 'B')
    const saved = join(root, 'saved')

    // The install that will be lost.
    await helix(['init', '--yes', '--dir', A])
    await helix(['db', 'start', '--dir', A])
    await helix(['db', 'migrate', '--dir', A])
    await helix(['users', 'create', '--email', 'ops@example.test', '--password-stdin', '--dir', A], PASSWORD)
    const key = JSON.parse(
      await helix([
        'apikeys',
        'create',
        '--name',
        'drill',
        '--scopes',
        'infer,models:read',
        '--user',
        'ops@example.test',
        '--dir',
        A,
        '--json',
      ]),
    ) as { id: string; key: string }
    await mkdir(join(A, 'models', 'cls', '1'), { recursive: true })
    await copyFile(CLS_MODEL_PATH, join(A, 'models', 'cls', '1', 'model.onnx'))
    const before = await serve(A)
    running.push(before)
    const expected = await infer(before.url, key.key)
    const signedIn = await login(before.url)
    expect(signedIn.status).toBe(200)
    const { access_token: token } = (await signedIn.json()) as { access_token: string }

    // The backups docs/operations lists.
    await helix(['keys', 'backup', '--out', join(root, 'keys.backup'), '--dir', A])
    await helix(['db', 'backup', '--out', join(root, 'helix-db.backup'), '--dir', A])
    await mkdir(saved)
    await copyFile(join(A, 'helix.yaml'), join(saved, 'helix.yaml'))
    await cp(join(A, 'certs'), join(saved, 'certs'), { recursive: true })
    await cp(join(A, 'models'), join(saved, 'models'), { recursive: true })
    const head = /head (\d+:[0-9a-f]{64})/.exec(await helix(['audit', 'verify', '--dir', A]))?.[1]
    expect(head).toBeDefined()

    // The disaster: the daemon, the database and the whole directory are gone.
    const lost = Date.now()
    await stop(before)
    await helix(['db', 'stop', '--dir', A])
    await rm(A, { recursive: true, force: true })

    // Recovery into a fresh directory.
    await mkdir(B)
    await copyFile(join(saved, 'helix.yaml'), join(B, 'helix.yaml'))
    await cp(join(saved, 'certs'), join(B, 'certs'), { recursive: true })
    await cp(join(saved, 'models'), join(B, 'models'), { recursive: true })
    await helix(['keys', 'restore', join(root, 'keys.backup'), '--dir', B])
    await helix(['db', 'start', '--dir', B])
    await helix(['db', 'restore', join(root, 'helix-db.backup'), '--dir', B])
    const after = await serve(B)
    running.push(after)
    const recoverySeconds = (Date.now() - lost) / 1000
    console.log(`disaster recovery drill: serving again ${recoverySeconds.toFixed(1)} s after the loss`)

    // Everything a user had works as before.
    expect(await infer(after.url, key.key)).toEqual(expected)
    const me = await fetch(`${after.url}/auth/me`, { headers: { authorization: `Bearer ${token}` } })
    expect(me.status, 'an access token issued before the loss still verifies').toBe(200)
    expect(((await me.json()) as { email: string }).email).toBe('ops@example.test')
    expect((await login(after.url)).status).toBe(200)
    const keys = await runHelixJson<{ id: string }[]>(['apikeys', 'list', '--dir', B])
    expect(keys.map((k) => k.id)).toContain(key.id)
    const verified = await runHelix(['audit', 'verify', '--expect-head', head ?? '', '--dir', B])
    expect(verified.exitCode, verified.stderr).toBe(0)
    await stop(after)
  }, 600_000)
})
