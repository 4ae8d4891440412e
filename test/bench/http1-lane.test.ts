import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import tls from 'node:tls'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Http1Lane, type LaneTarget, serializeRequest } from '../../src/bench/http1-lane.js'
import { writeSelfSigned } from '../helpers/openssl.js'
import { startServer } from './servers.js'

/**
 * Http1Lane against real sockets on loopback: `node:net` servers that write hand-made response bytes
 * (so the framing, and where it is split, is exact), real node:http and Fastify servers, and a TLS
 * server with a self-signed certificate.
 */

interface Outcome {
  status: number
  serverTiming: string | undefined
  error: string | undefined
}

/** One send through the lane, and how many times its callback ran (must end at exactly 1). */
interface Sent {
  calls: number
  outcome: Promise<Outcome>
}

interface RawServer {
  port: number
  /** Connections accepted. */
  connections: number
  /** Connections that ended or were destroyed. */
  closed: number
  /** Every complete request received, in order, as latin1 text (head and body). */
  requests: string[]
  /** Bytes received, over all connections. */
  bytes: number
  /** Most requests received on one connection and not yet answered. */
  maxOutstanding: number
  close: () => Promise<void>
}

/** Answers one request; the next request on that connection waits until this resolves. */
type Reply = (socket: net.Socket, request: string, index: number) => unknown

const CRLF2 = '\r\n\r\n'
const cleanups: (() => unknown)[] = []
const sends: Sent[] = []

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
  await sleep(5) // late socket events ('close' after 'error') must not call a callback again
  for (const sent of sends.splice(0)) expect(sent.calls).toBe(1)
})

/** A TCP server that parses requests (Content-Length framing) and answers each with `reply`. */
async function rawServer(reply: Reply): Promise<RawServer> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    state.connections++
    sockets.add(socket)
    socket.setNoDelay(true)
    socket.on('error', () => {})
    socket.on('close', () => {
      state.closed++
      sockets.delete(socket)
    })
    let pending = Buffer.alloc(0)
    let outstanding = 0
    let queue: Promise<unknown> = Promise.resolve()
    socket.on('data', (chunk: Buffer) => {
      state.bytes += chunk.length
      pending = Buffer.concat([pending, chunk])
      for (;;) {
        const end = pending.indexOf(CRLF2)
        if (end < 0) break
        const length = /\r\ncontent-length: *(\d+)/i.exec(pending.toString('latin1', 0, end))
        const total = end + 4 + (length ? Number(length[1]) : 0)
        if (pending.length < total) break
        const request = pending.toString('latin1', 0, total)
        pending = pending.subarray(total)
        const index = state.requests.push(request) - 1
        outstanding++
        state.maxOutstanding = Math.max(state.maxOutstanding, outstanding)
        queue = queue.then(async () => {
          await reply(socket, request, index)
          outstanding--
        })
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const state: RawServer = {
    port: (server.address() as net.AddressInfo).port,
    connections: 0,
    closed: 0,
    requests: [],
    bytes: 0,
    maxOutstanding: 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  }
  cleanups.push(state.close)
  return state
}

/** A server that answers every request with the same bytes, in one write. */
const fixed = (response: string) => rawServer((socket) => socket.write(response))

/** Writes `parts` one after another with a pause between, so each reaches the client on its own. */
async function inPieces(socket: net.Socket, parts: string[], gapMs = 5): Promise<void> {
  for (const [i, part] of parts.entries()) {
    if (i > 0) await sleep(gapMs)
    socket.write(part, 'latin1')
  }
}

/** Writes `text` one byte per write, yielding to the event loop between writes. */
async function byteByByte(socket: net.Socket, text: string): Promise<void> {
  for (const byte of Buffer.from(text, 'latin1')) {
    socket.write(Buffer.of(byte))
    await new Promise((resolve) => setImmediate(resolve))
  }
}

const get = (port: number) =>
  serializeRequest(new URL(`http://127.0.0.1:${port}`), '/x', 'GET', {}, undefined)

function lane(port: number, target: Partial<LaneTarget> = {}): Http1Lane {
  const l = new Http1Lane({
    host: '127.0.0.1',
    port,
    tls: false,
    request: get(port),
    responseHasBody: true,
    timeoutMs: 1000,
    ...target,
  })
  cleanups.push(() => l.close())
  return l
}

function send(l: Http1Lane): Promise<Outcome> {
  let resolve!: (o: Outcome) => void
  const sent: Sent = { calls: 0, outcome: new Promise<Outcome>((r) => (resolve = r)) }
  sends.push(sent)
  l.send((status, serverTiming, error) => {
    sent.calls++
    resolve({ status, serverTiming, error })
  })
  return sent.outcome
}

const ok = (status: number, serverTiming?: string): Outcome => ({ status, serverTiming, error: undefined })
const failed = (error: string): Outcome => ({ status: 0, serverTiming: undefined, error })

describe('serializeRequest', () => {
  const url = new URL('http://api.test:8080/base')

  it('writes the request line and adds host from the URL unless the caller gave one', () => {
    expect(serializeRequest(url, '/p?q=1', 'GET', { accept: '*/*' }, undefined).toString('latin1')).toBe(
      'GET /p?q=1 HTTP/1.1\r\nhost: api.test:8080\r\naccept: */*\r\n\r\n',
    )
    expect(serializeRequest(new URL('http://api.test/'), '/', 'GET', {}, undefined).toString('latin1')).toBe(
      'GET / HTTP/1.1\r\nhost: api.test\r\n\r\n',
    )
    expect(serializeRequest(url, '/', 'DELETE', { Host: 'other' }, undefined).toString('latin1')).toBe(
      'DELETE / HTTP/1.1\r\nHost: other\r\n\r\n',
    )
  })

  it('sets content-length from the body, replacing one the caller gave, and appends the body bytes', () => {
    const body = Uint8Array.of(0, 0xff, 0x0d, 0x0a, 0x41)
    const request = serializeRequest(url, '/e', 'PUT', { 'Content-Length': '999', 'x-a': 'b' }, body)
    const head = 'PUT /e HTTP/1.1\r\nhost: api.test:8080\r\nx-a: b\r\ncontent-length: 5\r\n\r\n'
    expect(request.subarray(0, head.length).toString('latin1')).toBe(head)
    expect(request.subarray(head.length)).toEqual(Buffer.from(body))
    expect(serializeRequest(url, '/', 'GET', {}, new Uint8Array(0)).toString('latin1')).toBe(
      'GET / HTTP/1.1\r\nhost: api.test:8080\r\ncontent-length: 0\r\n\r\n',
    )
  })

  it('gives POST, PUT and PATCH without a body content-length: 0, and GET none', () => {
    for (const method of ['POST', 'PUT', 'PATCH'])
      expect(serializeRequest(url, '/', method, {}, undefined).toString('latin1')).toBe(
        `${method} / HTTP/1.1\r\nhost: api.test:8080\r\ncontent-length: 0\r\n\r\n`,
      )
    expect(serializeRequest(url, '/', 'GET', { 'content-length': '3' }, undefined).toString('latin1')).toBe(
      'GET / HTTP/1.1\r\nhost: api.test:8080\r\n\r\n',
    )
  })

  it('refuses header names and values that could smuggle a second request', () => {
    const bad: Record<string, string>[] = [
      { 'x-a': 'b\r\nGET /evil HTTP/1.1' },
      { 'x-a': 'b\nx-c: d' },
      { 'x-a': 'b\r' },
      { 'x-a\r\nx-b': 'c' },
      { 'bad name': 'v' },
      { 'a:b': 'v' },
      { '': 'v' },
      { 'x-a': 'snowman ☃' },
      { 'x-a': 'nul\u0000' },
    ]
    for (const headers of bad)
      expect(() => serializeRequest(url, '/', 'GET', headers, undefined)).toThrow(TypeError)
    expect(() => serializeRequest(url, '/', 'GET', { "x-!#$%&'*+.^_`|~09": 'v' }, undefined)).not.toThrow()
    // latin1 (obs-text) and tabs are legal in values and go out byte for byte.
    expect(
      serializeRequest(url, '/', 'GET', { 'x-a': 'caf\u00e9\tb' }, undefined).includes(
        Buffer.from([0xe9, 0x09]),
      ),
    ).toBe(true)
  })
})

describe('Http1Lane against real HTTP servers', () => {
  it('exchanges with Fastify over one keep-alive connection and returns its Server-Timing', async () => {
    const server = await startServer()
    cleanups.push(server.close)
    let connections = 0
    server.app.server.on('connection', () => connections++)
    const port = Number(new URL(server.url).port)
    const body = Buffer.from('{"inputs":[{"name":"x"}]}')
    const headers = { 'content-type': 'application/json' }
    const request = serializeRequest(new URL(server.url), '/v2/models/m/infer', 'POST', headers, body)
    const l = lane(port, { request })
    for (let i = 0; i < 3; i++) expect(await send(l)).toEqual(ok(200, 'queue;dur=0.250, compute;dur=1.500'))
    expect(server.hits.get('/v2/models/m/infer')).toBe(3)
    expect(connections).toBe(1)
  })

  it('reads node:http chunked responses and skips HEAD bodies, reusing the connection', async () => {
    const received: string[] = []
    let connections = 0
    const server = http.createServer((req, res) => {
      received.push(`${req.method} ${req.url}`)
      res.setHeader('Server-Timing', 'app;dur=3')
      if (req.method === 'HEAD') {
        res.setHeader('content-length', '5')
        res.end()
        return
      }
      res.write('hello ')
      setTimeout(() => res.end('world'), 2)
    })
    server.on('connection', () => connections++)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise((resolve) => server.close(resolve)))
    cleanups.push(() => server.closeAllConnections())
    const port = (server.address() as net.AddressInfo).port
    const chunked = lane(port)
    expect(await send(chunked)).toEqual(ok(200, 'app;dur=3'))
    expect(await send(chunked)).toEqual(ok(200, 'app;dur=3'))
    const url = new URL(`http://127.0.0.1:${port}`)
    const head = lane(port, {
      request: serializeRequest(url, '/h', 'HEAD', {}, undefined),
      responseHasBody: false,
    })
    expect(await send(head)).toEqual(ok(200, 'app;dur=3'))
    expect(await send(head)).toEqual(ok(200, 'app;dur=3'))
    expect(received).toEqual(['GET /x', 'GET /x', 'HEAD /h', 'HEAD /h'])
    expect(connections).toBe(2)
  })
})

describe('Http1Lane response framing', () => {
  it('reads a Content-Length body that arrives one byte per write', async () => {
    const server = await rawServer((socket) =>
      byteByByte(
        socket,
        'HTTP/1.1 201 Created\r\nServer-Timing: db;dur=7\r\nContent-Length: 10\r\n\r\n0123456789',
      ),
    )
    const l = lane(server.port)
    expect(await send(l)).toEqual(ok(201, 'db;dur=7'))
    expect(await send(l)).toEqual(ok(201, 'db;dur=7'))
    expect(server.connections).toBe(1)
    expect(server.requests).toEqual([
      get(server.port).toString('latin1'),
      get(server.port).toString('latin1'),
    ])
    expect(server.bytes).toBe(2 * get(server.port).length)
  })

  it('finds the end of the head when CRLFCRLF is split across writes, at every split point', async () => {
    const head = 'HTTP/1.1 200 OK\r\nsErVeR-tImInG: x;dur=1\r\ncontent-length: 3\r\n\r\n'
    const splits = [head.length - 3, head.length - 2, head.length - 1, head.length]
    const server = await rawServer((socket, _request, index) => {
      const at = splits[index]
      return inPieces(socket, [head.slice(0, at), `${head.slice(at)}a`, 'bc'])
    })
    const l = lane(server.port)
    for (let i = 0; i < splits.length; i++) expect(await send(l)).toEqual(ok(200, 'x;dur=1'))
    expect(server.connections).toBe(1)
  })

  it('reads a head split in several pieces, with the body starting in the piece that ends it', async () => {
    const server = await rawServer((socket) =>
      inPieces(socket, [
        'HTTP/1.1 20',
        '0 OK\r\nServer-Timing: a',
        ';dur=2\r\ncontent-length: 2\r',
        '\n\r\nhi',
      ]),
    )
    const l = lane(server.port)
    expect(await send(l)).toEqual(ok(200, 'a;dur=2'))
    expect(await send(l)).toEqual(ok(200, 'a;dur=2'))
    expect(server.connections).toBe(1)
  })

  it('finishes a Content-Length: 0 response at once and ignores header lines without a colon or other Connection tokens', async () => {
    const server = await fixed(
      'HTTP/1.1 200 OK\r\nnot a header\r\nconnection: TE\r\ncontent-length: 0\r\n\r\n',
    )
    const l = lane(server.port)
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(server.connections).toBe(1)
  })

  it('reads chunked bodies with extensions, sizes split across writes and trailers', async () => {
    const responses = [
      // Everything at once, with extensions and upper-case hex.
      [
        'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\n\r\n',
      ],
      // Sizes, data and the CRLF after data split across writes; trailers after the 0 chunk.
      [
        'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\nserver-timing: c;dur=1\r\n\r\n1',
        '0\r\n0123',
        '456789abcdef\r',
        '\n3\r\nabc\r\n0',
        '\r\nx-trailer: 1\r\n',
        'x-other: 2\r\n\r\n',
      ],
    ]
    const server = await rawServer((socket, _request, index) => inPieces(socket, responses[index % 2]))
    const l = lane(server.port)
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(await send(l)).toEqual(ok(200, 'c;dur=1'))
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(server.connections).toBe(1)
  })

  it('reads a chunked body one byte per write', async () => {
    const server = await rawServer((socket) =>
      byteByByte(
        socket,
        'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n0\r\nt: 1\r\n\r\n',
      ),
    )
    const l = lane(server.port)
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(server.connections).toBe(1)
  })

  it('skips 1xx interim responses and reports the final status and its Server-Timing only', async () => {
    const interim =
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\nserver-timing: early\r\n\r\n'
    const server = await rawServer((socket, _request, index) =>
      index === 0
        ? socket.write(
            `${interim}HTTP/1.1 200 OK\r\nserver-timing: final;dur=4\r\ncontent-length: 1\r\n\r\nx`,
          )
        : inPieces(socket, [
            'HTTP/1.1 103 Early',
            ` Hints\r\nserver-timing: early${CRLF2}`,
            'HTTP/1.1 202 OK\r\ncontent-length: 0\r\n\r\n',
          ]),
    )
    const l = lane(server.port)
    expect(await send(l)).toEqual(ok(200, 'final;dur=4'))
    expect(await send(l)).toEqual(ok(202, undefined)) // the 103's Server-Timing is not the response's
    expect(server.connections).toBe(1)
  })

  it('does not wait for a body after HEAD, 204 or 304, and keeps the connection', async () => {
    const responses = [
      'HTTP/1.1 204 No Content\r\nserver-timing: a\r\n\r\n',
      'HTTP/1.1 304 Not Modified\r\ncontent-length: 50\r\n\r\n',
      'HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n',
    ]
    const server = await rawServer((socket, _request, index) => socket.write(responses[Math.min(index, 2)]))
    const l = lane(server.port)
    expect(await send(l)).toEqual(ok(204, 'a'))
    expect(await send(l)).toEqual(ok(304, undefined))
    const head = lane(server.port, {
      request: serializeRequest(new URL('http://h'), '/', 'HEAD', {}, undefined),
      responseHasBody: false,
    })
    expect(await send(head)).toEqual(ok(200, undefined))
    expect(await send(head)).toEqual(ok(200, undefined))
    expect(server.requests.map((r) => r.split(' ')[0])).toEqual(['GET', 'GET', 'HEAD', 'HEAD'])
    expect(server.connections).toBe(2)
  })

  it('ignores bytes a keep-alive server sends after the response', async () => {
    const server = await fixed('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokJUNK')
    const l = lane(server.port)
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(server.connections).toBe(1)
  })
})

describe('Http1Lane connections', () => {
  it('reuses one connection for sequential sends', async () => {
    const server = await fixed('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
    const l = lane(server.port)
    for (let i = 0; i < 10; i++) expect(await send(l)).toEqual(ok(200, undefined))
    expect(server.connections).toBe(1)
    expect(server.requests).toHaveLength(10)
    expect(server.closed).toBe(0)
  })

  it('closes and reconnects after Connection: close, even when the server leaves it open', async () => {
    const server = await fixed('HTTP/1.1 200 OK\r\nConnection: Close\r\ncontent-length: 2\r\n\r\nok')
    const l = lane(server.port)
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(server.connections).toBe(2)
    await sleep(5)
    expect(server.closed).toBeGreaterThanOrEqual(1) // the lane closed the first one itself
  })

  it('reads an HTTP/1.0 response without Content-Length until the server closes', async () => {
    const server = await rawServer((socket) =>
      inPieces(socket, ['HTTP/1.0 200 OK\r\nserver-timing: z;dur=9\r\n\r\nsome', ' body']).then(() =>
        socket.end(),
      ),
    )
    const l = lane(server.port)
    expect(await send(l)).toEqual(ok(200, 'z;dur=9'))
    expect(await send(l)).toEqual(ok(200, 'z;dur=9'))
    expect(server.connections).toBe(2)
  })

  it('keeps an HTTP/1.0 connection that says keep-alive', async () => {
    const server = await fixed('HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 2\r\n\r\nok')
    const l = lane(server.port)
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(server.connections).toBe(1)
  })

  it('reconnects after the server closes an idle keep-alive connection', async () => {
    const server = await rawServer((socket) => {
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')
      setTimeout(() => socket.end(), 5)
    })
    const l = lane(server.port)
    expect(await send(l)).toEqual(ok(200, undefined))
    await sleep(30)
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(server.connections).toBe(2)
  })

  it('runs sends made while one is in flight one at a time, in order, on one connection', async () => {
    const server = await rawServer(async (socket, _request, index) => {
      await sleep(3)
      socket.write(`HTTP/1.1 200 OK\r\nserver-timing: n;dur=${index}\r\ncontent-length: 0\r\n\r\n`)
    })
    const l = lane(server.port)
    const order: number[] = []
    const all = [0, 1, 2, 3, 4].map(async (i) => {
      const outcome = await send(l)
      order.push(i)
      return outcome
    })
    const outcomes = await Promise.all(all)
    expect(outcomes).toEqual([0, 1, 2, 3, 4].map((i) => ok(200, `n;dur=${i}`)))
    expect(order).toEqual([0, 1, 2, 3, 4])
    expect(server.connections).toBe(1)
    expect(server.requests).toHaveLength(5)
    expect(server.maxOutstanding).toBe(1)
  })

  it('queued sends survive a response delimited by close (HTTP/1.1 without Content-Length)', async () => {
    const server = await rawServer((socket) => {
      socket.end('HTTP/1.1 200 OK\r\nserver-timing: u\r\n\r\nuntil close')
    })
    const l = lane(server.port)
    const outcomes = await Promise.all([send(l), send(l), send(l)])
    expect(outcomes).toEqual([ok(200, 'u'), ok(200, 'u'), ok(200, 'u')])
    expect(server.connections).toBe(3)
    expect(server.maxOutstanding).toBe(1)
  })

  it('does not tear down a lane left idle for longer than timeoutMs', async () => {
    let answer = true
    const server = await rawServer((socket) => {
      if (answer) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n')
    })
    const l = lane(server.port, { timeoutMs: 20 })
    expect(await send(l)).toEqual(ok(200, undefined))
    await sleep(80)
    expect(server.closed).toBe(0)
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(server.connections).toBe(1)
    // The timer still runs for the next request after the idle spell.
    answer = false
    await sleep(50)
    expect(await send(l)).toEqual(failed('timeout'))
    expect(server.requests).toHaveLength(3)
  })
})

describe('Http1Lane failures', () => {
  it('reports ECONNREFUSED for a port nobody listens on, for each queued send', async () => {
    const server = await rawServer(() => {})
    const { port } = server
    await server.close()
    const l = lane(port)
    expect(await Promise.all([send(l), send(l)])).toEqual([failed('ECONNREFUSED'), failed('ECONNREFUSED')])
  })

  it('times out a request the server never answers, closes it and reconnects for the next', async () => {
    let answer = false
    const server = await rawServer((socket) => {
      if (answer) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n')
    })
    const l = lane(server.port, { timeoutMs: 30 })
    const started = performance.now()
    expect(await send(l)).toEqual(failed('timeout'))
    expect(performance.now() - started).toBeGreaterThanOrEqual(25)
    expect(server.requests).toHaveLength(1)
    await sleep(5)
    expect(server.closed).toBe(1)
    answer = true
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(server.connections).toBe(2)
  })

  it("reports 'socket closed' when the server closes mid-body or before answering", async () => {
    const responses = [
      'HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n012',
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab',
      'HTTP/1.1 200 OK\r\ncontent-le',
      '',
    ]
    const server = await rawServer((socket) => socket.end(responses[server.connections - 1]))
    const l = lane(server.port)
    for (let i = 0; i < responses.length; i++) expect(await send(l)).toEqual(failed('socket closed'))
    expect(server.connections).toBe(4)
  })

  it('reports ECONNRESET when the server resets the connection', async () => {
    const server = await rawServer((socket) => socket.resetAndDestroy())
    const l = lane(server.port)
    expect(await send(l)).toEqual(failed('ECONNRESET'))
  })

  it('reports HPE_INVALID_STATUS for a garbage or non-HTTP/1 status line and closes the connection', async () => {
    const responses = [
      'garbage\r\n\r\n',
      'HTTP/2.0 200 OK\r\ncontent-length: 0\r\n\r\n',
      'HTTP/1.1 099 Low\r\n\r\n',
      'HTTP/1.1 2x0 OK\r\n\r\n',
    ]
    const server = await rawServer((socket) => socket.write(responses[server.connections - 1]))
    const l = lane(server.port)
    for (let i = 0; i < responses.length; i++) expect(await send(l)).toEqual(failed('HPE_INVALID_STATUS'))
    expect(server.connections).toBe(4)
    await sleep(5)
    expect(server.closed).toBe(4)
  })

  it('reports HPE_INVALID_CHUNK_SIZE for a bad chunk size, and the next send reconnects', async () => {
    const responses = [
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n',
    ]
    const server = await rawServer((socket) => socket.write(responses[server.connections - 1]))
    const l = lane(server.port)
    expect(await send(l)).toEqual(failed('HPE_INVALID_CHUNK_SIZE'))
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(server.connections).toBe(2)
  })

  it("a queued send gets its own response, not the rest of a broken connection's bytes", async () => {
    const bad = [
      'HTTP/9 nonsense\r\n\r\nHTTP/1.1 500 Smuggled\r\ncontent-length: 0\r\n\r\n',
      'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nHTTP/1.1 500 Smuggled\r\n\r\n',
      'HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\nHTTP/1.1 500 Smuggled\r\n\r\n',
    ]
    const good = 'HTTP/1.1 200 OK\r\nserver-timing: mine\r\ncontent-length: 0\r\n\r\n'
    for (const response of bad) {
      const server = await rawServer((socket) => socket.write(server.connections === 1 ? response : good))
      const l = lane(server.port)
      const [first, second] = await Promise.all([send(l), send(l)])
      expect(first.error === undefined ? first.status : first.error).not.toBe(500)
      expect(second).toEqual(ok(200, 'mine'))
      expect(server.connections).toBe(2)
    }
  })

  it("close() ends the exchange in flight and the queued ones with 'socket closed', once each", async () => {
    const server = await rawServer(() => {}) // accepts, never answers
    const l = lane(server.port)
    const order: number[] = []
    const all = [0, 1, 2].map(async (i) => {
      const outcome = await send(l)
      order.push(i)
      return outcome
    })
    await sleep(10)
    expect(server.requests).toHaveLength(1) // one at a time: the others never left the lane
    l.close()
    expect(await Promise.all(all)).toEqual([0, 1, 2].map(() => failed('socket closed')))
    expect(order).toEqual([0, 1, 2])
    await sleep(5)
    expect(server.closed).toBe(1)
    l.close() // closing an idle, unconnected lane is harmless
  })

  it('close() on an idle keep-alive lane closes its connection; a later send reconnects', async () => {
    const server = await fixed('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n')
    const l = lane(server.port)
    expect(await send(l)).toEqual(ok(200, undefined))
    l.close()
    await sleep(5)
    expect(server.closed).toBe(1)
    expect(await send(l)).toEqual(ok(200, undefined))
    expect(server.connections).toBe(2)
  })
})

describe('Http1Lane over TLS', () => {
  let dir: string
  let key: Buffer
  let cert: Buffer
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'helix-lane-tls-'))
    await writeSelfSigned({
      keyOut: join(dir, 'key.pem'),
      certOut: join(dir, 'cert.pem'),
      days: 1,
      subject: '/CN=localhost',
    })
    key = readFileSync(join(dir, 'key.pem'))
    cert = readFileSync(join(dir, 'cert.pem'))
  })
  afterAll(() => rmSync(dir, { recursive: true, force: true }))

  it('speaks TLS, offers http/1.1, sends SNI only for host names, and rejects a self-signed certificate', async () => {
    const sni: string[] = []
    const alpn: string[][] = []
    let connections = 0
    let plaintext = 0
    const server = tls.createServer(
      {
        key,
        cert,
        SNICallback: (name, cb) => {
          sni.push(name)
          cb(null, tls.createSecureContext({ key, cert }))
        },
        ALPNCallback: ({ protocols }) => {
          alpn.push(protocols)
          return 'http/1.1'
        },
      },
      (socket) => socket.on('data', (chunk) => (plaintext += chunk.length)),
    )
    server.on('connection', () => connections++)
    server.on('tlsClientError', () => {})
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    cleanups.push(() => new Promise((resolve) => server.close(resolve)))
    const port = (server.address() as net.AddressInfo).port
    for (const host of ['127.0.0.1', 'localhost']) {
      const l = lane(port, { host, tls: true })
      const outcome = await send(l)
      expect(outcome).toEqual(failed('DEPTH_ZERO_SELF_SIGNED_CERT'))
    }
    expect(connections).toBe(2)
    expect(sni).toEqual(['localhost'])
    expect(alpn).toEqual([['http/1.1'], ['http/1.1']])
    expect(plaintext).toBe(0) // the request never left an unverified connection
  })
})
