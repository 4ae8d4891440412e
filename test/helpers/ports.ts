import { createServer } from 'node:net'

async function tryListen(port: number): Promise<number | undefined> {
  const server = createServer()
  return new Promise((resolve) => {
    server.once('error', () => resolve(undefined))
    server.listen(port, '127.0.0.1', () => {
      const { port: bound } = server.address() as { port: number }
      server.close(() => resolve(bound))
    })
  })
}

/**
 * A free port whose successor is free too, for a daemon that puts REST on `port` and gRPC on
 * `port + 1` (the default when only the REST port is given).
 */
export async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await tryListen(0)
    if (port !== undefined && port < 65535 && (await tryListen(port + 1)) !== undefined) return port
  }
  throw new Error('no two consecutive free ports found on 127.0.0.1')
}
