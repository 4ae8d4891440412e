import { createServer } from 'node:net'
import { execa, type ResultPromise } from 'execa'
import { Redis } from 'ioredis'

/** A free loopback port, as the kernel hands it out. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

export interface RedisHandle {
  url: string
  port: number
  stop(): Promise<void>
}

/**
 * Starts a real, throw-away redis-server on a spare loopback port (no persistence), or on `port`
 * (to restart one that was stopped where its clients expect it).
 */
export async function startRedis(port?: number): Promise<RedisHandle> {
  port ??= await freePort()
  const child: ResultPromise = execa(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
    { reject: false, stdio: 'ignore' },
  )
  const url = `redis://127.0.0.1:${port}`
  const deadline = Date.now() + 10_000
  for (;;) {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    probe.on('error', () => {})
    try {
      await probe.connect()
      await probe.ping()
      probe.disconnect()
      break
    } catch {
      probe.disconnect()
      if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  return {
    url,
    port,
    stop: async () => {
      child.kill('SIGTERM')
      await child
    },
  }
}
