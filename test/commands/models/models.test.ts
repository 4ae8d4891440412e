import { once } from 'node:events'
import { access, mkdir, readdir, writeFile } from 'node:fs/promises'
import { type AddressInfo, createServer } from 'node:net'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { HELIX_BIN, runHelix, runHelixJson, tempDir } from '../../helpers/cli.js'
import { addModel, CLS_MODEL_PATH, corruptModel, writeOnnx } from '../../helpers/onnx-models.js'

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  )

describe('helix models (e2e, built binary)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let corrupt: string
  let add: string
  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    corrupt = await writeOnnx(join(dir, 'files', 'corrupt.onnx'), corruptModel())
    add = await writeOnnx(join(dir, 'files', 'add.onnx'), addModel())
  })
  afterAll(() => cleanup())
  const home = () => join(dir, 'home')

  it('adds the PP-OCR cls model as version 1, then the next version', async () => {
    const first = await runHelixJson<{ name: string; version: string; path: string; inputs: unknown[] }>([
      'models',
      'add',
      'cls',
      CLS_MODEL_PATH,
      '--dir',
      home(),
    ])
    expect(first).toMatchObject({
      name: 'cls',
      version: '1',
      path: join(home(), 'models', 'cls', '1', 'model.onnx'),
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 3, -1, -1] }],
      outputs: [{ name: 'softmax_0.tmp_0', datatype: 'FP32', shape: [-1, 2] }],
    })
    expect(await exists(first.path)).toBe(true)
    const human = await runHelix(['models', 'add', 'cls', CLS_MODEL_PATH, '--dir', home()])
    expect(human.exitCode).toBe(0)
    expect(human.stdout).toContain(
      `Added cls version 2 at ${join(home(), 'models', 'cls', '2', 'model.onnx')}`,
    )
    expect(human.stdout).toContain('inputs:  x FP32 [-1,3,-1,-1]')
  })

  it('refuses a corrupt file, a missing file, a bad name and a taken version, leaving nothing behind', async () => {
    const bad = await runHelix(['models', 'add', 'broken', corrupt, '--dir', home(), '--json'])
    expect(bad.exitCode).toBe(2)
    expect(JSON.parse(bad.stderr).error).toMatchObject({
      code: 'MODEL_INVALID',
      message: expect.stringMatching(/^onnxruntime cannot load .*corrupt.onnx: .*Protobuf parsing failed/),
    })
    expect(await exists(join(home(), 'models', 'broken'))).toBe(false)
    const missing = await runHelix(['models', 'add', 'x', join(dir, 'nope.onnx'), '--dir', home()])
    expect(missing.exitCode).toBe(2)
    expect(missing.stderr).toContain(`Error: No model file at ${join(dir, 'nope.onnx')}.`)
    const name = await runHelix(['models', 'add', '../evil', add, '--dir', home()])
    expect(name.exitCode).toBe(2)
    expect(name.stderr).toContain("'../evil' is not a valid model name.")
    const taken = await runHelix(['models', 'add', 'cls', add, '--version', '2', '--dir', home()])
    expect(taken.exitCode).toBe(2)
    expect(taken.stderr).toContain("Model 'cls' already has version 2.")
    expect((await readdir(join(home(), 'models', 'cls'))).sort()).toEqual(['1', '2'])
  })

  it('lists versions, states, devices and providers, loading each model to check it', async () => {
    await runHelixJson(['models', 'add', 'add', add, '--version', '3', '--dir', home()])
    await mkdir(join(home(), 'models', 'rotten', '1'), { recursive: true })
    await writeFile(join(home(), 'models', 'rotten', '1', 'model.onnx'), corruptModel())
    const rows = await runHelixJson<Record<string, unknown>[]>(['models', 'list', '--dir', home()], {
      env: { HELIX_DEVICE: 'cpu' },
    })
    expect(rows).toEqual([
      { name: 'add', version: '3', state: 'READY', executionProvider: 'cpu', device: 'cpu' },
      { name: 'cls', version: '1', state: 'UNAVAILABLE', reason: 'not selected by version_policy' },
      { name: 'cls', version: '2', state: 'READY', executionProvider: 'cpu', device: 'cpu' },
      {
        name: 'rotten',
        version: '1',
        state: 'UNAVAILABLE',
        reason: expect.stringMatching(/^failed to load model.onnx: /),
      },
    ])
    const human = await runHelix(['models', 'list', '--dir', home()], { env: { HELIX_DEVICE: 'cpu' } })
    expect(human.stdout.split('\n')[0]).toMatch(/^NAME\s+VERSION\s+STATE\s+DEVICE\s+PROVIDER\s+REASON$/)
    expect(human.stdout).toMatch(/cls\s+2\s+READY\s+cpu\s+cpu/)
  })

  it('removes a version, then a whole model', async () => {
    expect(await runHelixJson(['models', 'remove', 'cls', '--version', '1', '--dir', home()])).toEqual({
      name: 'cls',
      versions: ['1'],
    })
    expect(await readdir(join(home(), 'models', 'cls'))).toEqual(['2'])
    const gone = await runHelix(['models', 'remove', 'rotten', '--dir', home()])
    expect(gone.stdout).toContain('Removed rotten version 1.')
    expect(await exists(join(home(), 'models', 'rotten'))).toBe(false)
    const ghost = await runHelix(['models', 'remove', 'ghost', '--dir', home()])
    expect(ghost.exitCode).toBe(2)
    expect(ghost.stderr).toContain("Model 'ghost' is not in the repository")
    const noVersion = await runHelix(['models', 'remove', 'cls', '--version', '9', '--dir', home()])
    expect(noVersion.exitCode).toBe(2)
    expect(noVersion.stderr).toContain("Model 'cls' has no version 9 (has 2).")
  })

  it('says the list is empty for an empty repository', async () => {
    const empty = await runHelix(['models', 'list', '--dir', join(dir, 'empty-home')])
    expect(empty.stdout.trim()).toBe(
      'No models in the repository. Add one with `helix models add NAME PATH`.',
    )
  })

  describe('against a running daemon', () => {
    let daemon: ResultPromise | undefined
    let url: string
    beforeAll(async () => {
      daemon = execa('node', [HELIX_BIN, 'serve', '--dir', home(), '--port', '0', '--no-auth'], {
        env: { HELIX_DEVICE: 'cpu' },
        reject: false,
      })
      url = await new Promise<string>((resolve, reject) => {
        let seen = ''
        daemon?.stdout?.on('data', (chunk: Buffer) => {
          seen += chunk.toString()
          const match = /helix serve listening on (\S+)/.exec(seen)
          if (match) resolve(match[1])
        })
        void daemon?.then(() => reject(new Error(`helix serve exited: ${seen}`)))
      })
    })
    afterAll(async () => {
      daemon?.kill('SIGTERM')
      await daemon
    })

    it('unloads and loads a model, and lists what the daemon holds', async () => {
      await expect
        .poll(
          async () =>
            (await runHelixJson<{ state: string }[]>(['models', 'list', '--url', url])).map((r) => r.state),
          { timeout: 20_000 },
        )
        .toEqual(['READY', 'READY'])
      expect(await runHelixJson(['models', 'unload', 'cls', '--url', url])).toEqual({
        model: 'cls',
        action: 'unload',
        url,
      })
      const rows = await runHelixJson<{ name: string; state: string }[]>(['models', 'list', '--url', url])
      expect(rows.find((r) => r.name === 'cls')).toMatchObject({ state: 'UNAVAILABLE', reason: 'unloaded' })
      const loaded = await runHelix(['models', 'load', 'cls', '--url', url])
      expect(loaded.stdout.trim()).toBe(`Model cls: load done (${url}).`)
      const after = await runHelixJson<Record<string, unknown>[]>(['models', 'list', '--url', url])
      expect(after.find((r) => r.name === 'cls')).toMatchObject({
        state: 'READY',
        executionProvider: 'cpu',
        device: 'cpu',
      })
      const ghost = await runHelix(['models', 'load', 'ghost', '--url', url])
      expect(ghost.exitCode).toBe(2)
      expect(ghost.stderr).toContain("answered 404: Model 'ghost' is not in the model repository.")
    })

    it('reads the daemon address from helix.yaml', async () => {
      const port = new URL(url).port
      await writeFile(join(home(), 'helix.yaml'), `server:\n  port: ${port}\n`)
      expect(await runHelixJson(['models', 'load', 'add', '--dir', home()])).toMatchObject({
        url: `http://127.0.0.1:${port}`,
      })
      const rows = await runHelixJson<{ name: string }[]>(['models', 'list', '--daemon', '--dir', home()])
      expect(rows.map((r) => r.name)).toEqual(['add', 'cls'])
    })
  })

  it('says clearly when no daemon is running', async () => {
    // A port that was free a moment ago: nothing listens there.
    const server = createServer().listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as AddressInfo).port
    await new Promise((resolve) => server.close(resolve))
    const down = await runHelix(['models', 'unload', 'cls', '--url', `http://127.0.0.1:${port}`])
    expect(down.exitCode).toBe(1)
    expect(down.stderr).toContain(
      `Error: Cannot reach the helix daemon at http://127.0.0.1:${port}: ECONNREFUSED.`,
    )
    expect(down.stderr).toContain('Hint: Start it with `helix serve`, or pass the right address with --url.')
  })
})
