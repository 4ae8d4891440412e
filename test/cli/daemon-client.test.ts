import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { authorization, modelControl, repositoryIndex } from '../../src/cli/daemon-client.js'
import { renderGpus } from '../../src/cli/output/gpus.js'
import { renderModelList } from '../../src/cli/output/models.js'
import { daemonUrl } from '../../src/state/daemon-record.js'
import { rejection } from '../core/infer/service-helpers.js'

describe('daemonUrl', () => {
  it('derives the URL from server settings', () => {
    expect(daemonUrl({ host: '127.0.0.1', port: 8080, tls: false })).toBe('http://127.0.0.1:8080')
    expect(daemonUrl({ host: '0.0.0.0', port: 8443, tls: true })).toBe('https://127.0.0.1:8443')
    expect(daemonUrl({ host: '::1', port: 80, tls: false, mtls: true })).toBe('https://[::1]:80')
    expect(daemonUrl({ host: '::', port: 80, tls: false })).toBe('http://127.0.0.1:80')
    expect(authorization('hx_abc')).toEqual({ authorization: 'Bearer hx_abc' })
    expect(authorization(undefined)).toEqual({})
  })
})

describe('daemon client errors', () => {
  // An outside HTTP server playing a misbehaving daemon: what the CLI shows for each answer.
  let server: Server
  let url: string
  const answers: Record<string, [number, string]> = {
    '/v2/repository/models/a/load': [500, 'plain text failure'],
    '/v2/repository/models/b/load': [409, JSON.stringify({ error: { message: 'busy' } })],
    '/v2/repository/models/c/load': [503, ''],
    '/v2/repository/models/d/load': [200, ''],
  }
  beforeAll(async () => {
    server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const [status, body] = answers[req.url ?? ''] ?? [404, '{"error":"nope"}']
      res.writeHead(status, { 'content-type': 'application/json' }).end(body)
    }).listen(0, '127.0.0.1')
    await once(server, 'listening')
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
  })
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

  it('turns each kind of refusal into a coded error', async () => {
    const a = await rejection(modelControl(url, 'a', 'load'))
    expect([a.code, a.message, (a as unknown as { exitCode: number }).exitCode]).toEqual([
      'DAEMON_REFUSED',
      `The daemon at ${url} answered 500: plain text failure`,
      1,
    ])
    const b = await rejection(modelControl(url, 'b', 'load'))
    expect([b.message, (b as unknown as { exitCode: number }).exitCode]).toEqual([
      `The daemon at ${url} answered 409: {"message":"busy"}`,
      2,
    ])
    expect((await rejection(modelControl(url, 'c', 'load'))).message).toBe(
      `The daemon at ${url} answered 503: HTTP 503`,
    )
    await expect(modelControl(url, 'd', 'load')).resolves.toBeUndefined()
    expect((await rejection(repositoryIndex(url))).message).toBe(`The daemon at ${url} answered 404: nope`)
  })
})

describe('renderers', () => {
  it('renders model rows and GPUs with unknown utilisation', () => {
    expect(
      renderModelList([
        {
          name: 'm',
          version: '1',
          state: 'READY',
          executionProvider: 'cpu',
          device: 'cpu',
          fallbackReason: 'no GPU found: x',
        },
      ]),
    ).toBe(
      'NAME  VERSION  STATE  DEVICE  PROVIDER  REASON\nm     1        READY  cpu     cpu       no GPU found: x',
    )
    expect(renderModelList([{ name: 'm', version: '1', state: 'UNAVAILABLE' }])).toMatch(
      /m\s+1\s+UNAVAILABLE\s+-\s+-$/,
    )
    expect(
      renderGpus({
        gpus: [
          {
            index: 0,
            uuid: 'GPU-1',
            name: 'A100',
            memoryTotalMiB: 10,
            memoryUsedMiB: 4,
            memoryFreeMiB: 6,
            utilizationPercent: null,
          },
        ],
      }).split('\n')[1],
    ).toMatch(/^0\s+A100\s+4 \/ 10 MiB\s+6 MiB\s+n\/a\s+GPU-1$/)
    expect(renderGpus({ gpus: [] })).toMatch(/^No NVIDIA GPU found: nvidia-smi listed none\./)
  })
})
