import { once } from 'node:events'
import { type AddressInfo, createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import Gpus from '../../../src/commands/gpus.js'
import ModelsAdd from '../../../src/commands/models/add.js'
import ModelsList from '../../../src/commands/models/list.js'
import ModelsLoad from '../../../src/commands/models/load.js'
import ModelsRemove from '../../../src/commands/models/remove.js'
import ModelsUnload from '../../../src/commands/models/unload.js'
import { fakeNvidiaSmi } from '../../core/gpu/fake-nvidia-smi.js'
import { HELIX_BIN, ROOT, tempDir } from '../../helpers/cli.js'
import { addModel, writeOnnx } from '../../helpers/onnx-models.js'

// The same commands in-process (models.test.ts drives the built binary): flags reach the services
// and the typed result is what --json prints.
describe('models and gpus commands (in process)', () => {
  let dir: string
  let cleanup: () => Promise<void>
  let add: string
  const stdout: string[] = []
  const home = () => join(dir, 'home')

  beforeAll(async () => {
    ;({ dir, cleanup } = await tempDir())
    add = await writeOnnx(join(dir, 'add.onnx'), addModel())
    vi.spyOn(console, 'log').mockImplementation((line: unknown) => {
      stdout.push(String(line))
    })
    process.env.HELIX_DEVICE = 'cpu'
  })
  afterAll(async () => {
    delete process.env.HELIX_DEVICE
    vi.restoreAllMocks()
    await cleanup()
  })

  it('add, list, remove', async () => {
    const added = await ModelsAdd.run(['adder', add, '--dir', home()], ROOT)
    expect(added).toMatchObject({ name: 'adder', version: '1' })
    expect(stdout.join('\n')).toContain('A running daemon picks it up with `helix models load adder`.')
    await ModelsAdd.run(['adder', add, '--version', '4', '--dir', home()], ROOT)
    const rows = await ModelsList.run(['--dir', home(), '--json'], ROOT)
    expect(rows).toEqual([
      { name: 'adder', version: '1', state: 'UNAVAILABLE', reason: 'not selected by version_policy' },
      { name: 'adder', version: '4', state: 'READY', executionProvider: 'cpu', device: 'cpu' },
    ])
    expect(await ModelsRemove.run(['adder', '--version', '1', '--dir', home()], ROOT)).toEqual({
      name: 'adder',
      versions: ['1'],
    })
  })

  it('gpus', async () => {
    const fake = await fakeNvidiaSmi('h100-x1.csv')
    const path = process.env.PATH
    process.env.PATH = fake.env.PATH
    process.env.FAKE_NVIDIA_SMI_OUTPUT = fake.env.FAKE_NVIDIA_SMI_OUTPUT
    try {
      const found = await Gpus.run([], ROOT)
      expect(found.gpus.map((g) => g.name)).toEqual(['NVIDIA H100 80GB HBM3'])
    } finally {
      process.env.PATH = path
      delete process.env.FAKE_NVIDIA_SMI_OUTPUT
      await fake.cleanup()
    }
  })

  describe('load, unload and list against a running daemon', () => {
    let daemon: ResultPromise
    let url: string
    beforeAll(async () => {
      daemon = execa('node', [HELIX_BIN, 'serve', '--dir', home(), '--port', '0', '--no-auth'], {
        env: { HELIX_DEVICE: 'cpu' },
        reject: false,
      })
      url = await new Promise<string>((resolve, reject) => {
        let seen = ''
        daemon.stdout?.on('data', (chunk: Buffer) => {
          seen += chunk.toString()
          const match = /helix serve listening on (\S+)/.exec(seen)
          if (match) resolve(match[1])
        })
        void daemon.then(() => reject(new Error(`helix serve exited: ${seen}`)))
      })
    })
    afterAll(async () => {
      daemon.kill('SIGTERM')
      await daemon
    })

    it('unloads, lists and loads', async () => {
      await expect
        .poll(
          async () =>
            ((await ModelsList.run(['--url', url, '--json'], ROOT)) as { state: string }[]).map(
              (r) => r.state,
            ),
          { timeout: 20_000 },
        )
        .toEqual(['READY'])
      expect(await ModelsUnload.run(['adder', '--url', url], ROOT)).toEqual({
        model: 'adder',
        action: 'unload',
        url,
      })
      expect(await ModelsList.run(['--url', url], ROOT)).toEqual([
        { name: 'adder', version: '4', state: 'UNAVAILABLE', reason: 'unloaded' },
      ])
      expect(await ModelsLoad.run(['adder', '--url', url], ROOT)).toEqual({
        model: 'adder',
        action: 'load',
        url,
      })
      const rows = (await ModelsList.run(['--url', url, '--json'], ROOT)) as unknown as Record<
        string,
        unknown
      >[]
      expect(rows[0]).toMatchObject({ name: 'adder', state: 'READY', executionProvider: 'cpu' })
    })
  })

  it('reports a daemon that answers with something that is not an index', async () => {
    // An outside HTTP service on the port, not a helix daemon: the CLI must say so, not crash.
    const server: Server = createServer((socket) => {
      socket.once('data', () =>
        socket.end(
          'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello',
        ),
      )
    }).listen(0, '127.0.0.1')
    await once(server, 'listening')
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    try {
      await expect(ModelsList.run(['--url', url], ROOT)).rejects.toThrow()
      const { repositoryIndex } = await import('../../../src/cli/daemon-client.js')
      await expect(repositoryIndex(url)).rejects.toMatchObject({
        code: 'DAEMON_REFUSED',
        message: `The daemon at ${url} sent an unexpected repository index.`,
      })
    } finally {
      server.close()
    }
  })
})
