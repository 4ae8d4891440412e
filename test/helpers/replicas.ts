import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseDocument } from 'yaml'

/**
 * The production shape on one machine, for the load and fault checks: the generated nginx (TLS)
 * in front of several `helix serve` replicas of one helix directory, which share its embedded
 * PostgreSQL and a real redis-server for the rate limits. Self-contained (node built-ins and npm
 * packages only), so bench scripts load it too (bench/support/test-helper.js).
 */

export interface Replica {
  port: number
  child: ChildProcess
  /** What the replica printed (warn level and above). */
  output: () => string
}

export interface ReplicaCluster {
  /** https://127.0.0.1:<port> of nginx. */
  url: string
  dir: string
  /** The CA nginx's certificate chains to. */
  caFile: string
  /** nginx's JSON access log (one line per request, with upstream_addr and upstream_status). */
  accessLog: string
  /** An API key with the infer and models:read scopes. */
  key: string
  redisUrl: string
  replicas: Replica[]
  /** Resident memory of replica `i` in bytes (VmRSS). */
  rss(i: number): Promise<number>
  /** Sends `signal` to replica `i` and waits until it is gone. */
  kill(i: number, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Starts replica `i` again on its port. */
  restart(i: number): Promise<void>
  stop(): Promise<void>
}

export interface ClusterOptions {
  /** bin/run.js of the helix under test. */
  helixBin: string
  /** Models to add, name → .onnx file. */
  models: Record<string, string>
  replicas?: number
  /** Extra `helix serve` arguments for every replica. */
  serveArgs?: string[]
}

/** A free loopback port, as the kernel hands it out. */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

async function waitForPort(port: number, what: string, child: ChildProcess, output: () => string) {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${what} exited before listening:\n${output()}`)
    if (await canConnect(port)) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`${what} did not listen on ${port} within 60 s:\n${output()}`)
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c) => (stdout += c))
  child.stderr.on('data', (c) => (stderr += c))
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      if (code === 0) resolve(stdout)
      else reject(new Error(`${command} ${args.join(' ')} exited with ${code}:\n${stderr}${stdout}`))
    })
  })
}

function start(command: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  let text = ''
  const keep = (c: Buffer) => {
    text = (text + c.toString()).slice(-20_000)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  return { child, output: () => text }
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null)
    return { code: child.exitCode, signal: child.signalCode as NodeJS.Signals | null }
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  child.kill(signal)
  const [code, sig] = await exited
  clearTimeout(timer)
  return { code, signal: sig }
}

/** Rate limits far above what one machine can send: the limiters run on every request and refuse none. */
const UNLIMITED = 100_000_000

export async function startReplicaCluster(options: ClusterOptions): Promise<ReplicaCluster> {
  const helix = (args: string[]) => run(process.execPath, [options.helixBin, ...args, '--dir', dir])
  const dir = await mkdtemp(join(tmpdir(), 'helix-replicas-'))
  // As root the embedded PostgreSQL runs as an unprivileged user, who must be able to reach its data.
  await chmod(dir, 0o755)
  const children: ChildProcess[] = []
  const replicas: Replica[] = []
  let databaseStarted = false
  const stop = async () => {
    await Promise.all(children.map((c) => stopChild(c)))
    if (databaseStarted) await helix(['db', 'stop']).catch(() => {})
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await helix(['init', '--yes'])
    for (const [name, file] of Object.entries(options.models)) await helix(['models', 'add', name, file])
    const count = options.replicas ?? 2
    const ports = await Promise.all(Array.from({ length: count }, () => freePort()))
    const [httpsPort, httpPort, redisPort] = [await freePort(), await freePort(), await freePort()]
    const configFile = join(dir, 'helix.yaml')
    const doc = parseDocument(await readFile(configFile, 'utf8'))
    doc.setIn(['rate_limit', 'per_key_per_min'], UNLIMITED)
    doc.setIn(['rate_limit', 'per_ip_per_min'], UNLIMITED)
    doc.setIn(['server', 'grpc', 'enabled'], false)
    // nginx runs on this box: its X-Forwarded-For is believed, and a draining replica keeps its idle
    // connections for nginx to retire (server.drain_idle_grace_s, 5 s behind a proxy).
    doc.setIn(['server', 'trust_proxy'], ['loopback'])
    doc.setIn(
      ['nginx', 'upstreams'],
      ports.map((p) => `127.0.0.1:${p}`),
    )
    doc.setIn(['nginx', 'https_port'], httpsPort)
    doc.setIn(['nginx', 'http_port'], httpPort)
    doc.setIn(['nginx', 'rate_per_ip'], 1_000_000)
    doc.setIn(['nginx', 'rate_per_key'], 1_000_000)
    await writeFile(configFile, doc.toString())
    await helix(['render', 'nginx'])

    const redis = start('redis-server', [
      '--port',
      String(redisPort),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
    ])
    children.push(redis.child)
    await waitForPort(redisPort, 'redis-server', redis.child, redis.output)
    const redisUrl = `redis://127.0.0.1:${redisPort}`

    await helix(['db', 'start'])
    databaseStarted = true
    await helix(['db', 'migrate'])
    const key = JSON.parse(
      await helix(['apikeys', 'create', '--name', 'replicas', '--scopes', 'infer,models:read', '--json']),
    ).key as string

    const launch = async (i: number) => {
      const served = start(
        process.execPath,
        [
          options.helixBin,
          'serve',
          '--dir',
          dir,
          '--host',
          '127.0.0.1',
          '--port',
          String(ports[i]),
          '--no-grpc',
          ...(options.serveArgs ?? []),
        ],
        { REDIS_URL: redisUrl, HELIX_LOG_LEVEL: 'warn', HELIX_DIR: '' },
      )
      children.push(served.child)
      await waitForPort(ports[i], `helix serve replica ${i}`, served.child, served.output)
      replicas[i] = { port: ports[i], child: served.child, output: served.output }
    }
    for (let i = 0; i < count; i++) await launch(i)

    const prefix = join(dir, 'nginx-run')
    await mkdir(prefix, { recursive: true, mode: 0o755 })
    const nginx = start('nginx', [
      '-p',
      `${prefix}/`,
      '-c',
      join(dir, 'nginx', 'nginx.conf'),
      '-e',
      'stderr',
      '-g',
      'daemon off;',
    ])
    children.push(nginx.child)
    await waitForPort(httpsPort, 'nginx', nginx.child, nginx.output)

    return {
      url: `https://127.0.0.1:${httpsPort}`,
      dir,
      caFile: join(dir, 'certs', 'ca.crt'),
      accessLog: join(prefix, 'access.log'),
      key,
      redisUrl,
      replicas,
      rss: async (i) => {
        const status = await readFile(`/proc/${replicas[i].child.pid}/status`, 'utf8')
        return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
      },
      kill: (i, signal) => stopChild(replicas[i].child, signal),
      restart: (i) => launch(i),
      stop,
    }
  } catch (err) {
    await stop()
    throw err
  }
}
