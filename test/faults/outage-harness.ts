import { closeSync, openSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { stringify } from 'yaml'
import {
  CLI_ACTOR,
  type CreatedKey,
  createKey,
  type NewKeyRequest,
} from '../../src/core/identity/api-keys.js'
import type { IdentityDeps } from '../../src/core/identity/identity-deps.js'
import type { ServeResult } from '../../src/http/server.js'
import { serveDaemon } from '../../src/ops/serve.js'
import { HelixHome } from '../../src/shared/home.js'
import { type IdentityWorld, INFER_BODY } from '../core/identity/identity-harness.js'

/**
 * A real `helix serve` daemon (the full wiring of src/http/server.ts: identity, limiter, metrics) in
 * this process, on a loopback port, over an identity world's helix directory and own PostgreSQL.
 */
export interface OutageDaemon {
  url: string
  /** host:port of the gRPC face. */
  grpcTarget: string
  /** The daemon's JSON log lines so far. */
  logLines(): Promise<Record<string, unknown>[]>
  stop(): Promise<void>
}

export async function startOutageDaemon(
  world: IdentityWorld,
  settings: Record<string, unknown>,
): Promise<OutageDaemon> {
  const dir = world.database.home.root
  await writeFile(join(dir, 'helix.yaml'), stringify({ models: { device: 'cpu' }, ...settings }))
  const logFile = join(dir, 'daemon.log')
  const fd = openSync(logFile, 'w')
  let url = ''
  let grpcTarget = ''
  // SIGUSR2 is this file's own stop signal: vitest runs each test file in a fork of its own.
  const running: Promise<ServeResult> = serveDaemon(
    new HelixHome(dir),
    { port: 0, logLevel: 'info' },
    {
      onListening: (_u, faces) => {
        grpcTarget = faces.find((f) => f.name === 'gRPC')?.address ?? ''
      },
      onReady: (u) => {
        url = u
      },
      signals: ['SIGUSR2'],
      logDestination: fd,
    },
  )
  let failed: unknown
  running.catch((err) => (failed = err))
  const deadline = Date.now() + 60_000
  while (url === '') {
    if (failed) throw failed
    if (Date.now() > deadline)
      throw new Error(`helix serve did not get ready:\n${await readFile(logFile, 'utf8')}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    url,
    grpcTarget,
    async logLines() {
      const text = await readFile(logFile, 'utf8')
      return text
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
    },
    async stop() {
      process.emit('SIGUSR2', 'SIGUSR2')
      await running.catch(() => undefined)
      // pino's destination writes asynchronously: let it drain before the descriptor closes.
      await new Promise((r) => setTimeout(r, 200))
      closeSync(fd)
    },
  }
}

/** An API key made the way `helix apikeys create` makes it (CLI actor), straight in the world's database. */
export function cliKey(world: IdentityWorld, request: NewKeyRequest): Promise<CreatedKey> {
  const deps = { db: world.db, config: world.config } as IdentityDeps
  return createKey(deps, CLI_ACTOR, request)
}

export interface Sent {
  phase: string
  key: string
  status: number
  ms: number
  body: string
  headers: Headers
}

/**
 * Steady inference load: `workers` loops, each sending one request after the other, every request
 * with the key `keyOf(i)` and tagged with the phase current when it was sent. Every answer is kept,
 * and a request that fails below HTTP (reset, refused) as status 0.
 */
export function steadyLoad(url: string, keyOf: (i: number) => string, workers = 3) {
  const sent: Sent[] = []
  let phase = 'start'
  let stopped = false
  let n = 0
  const loop = async () => {
    while (!stopped) {
      const key = keyOf(n++)
      const tag = phase
      const started = performance.now()
      try {
        const res = await fetch(`${url}/v2/models/add/infer`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify(INFER_BODY),
          signal: AbortSignal.timeout(10_000),
        })
        const body = await res.text()
        sent.push({
          phase: tag,
          key,
          status: res.status,
          ms: performance.now() - started,
          body,
          headers: res.headers,
        })
      } catch (err) {
        sent.push({
          phase: tag,
          key,
          status: 0,
          ms: performance.now() - started,
          body: String(err),
          headers: new Headers(),
        })
      }
    }
  }
  const running = Promise.all(Array.from({ length: workers }, loop))
  return {
    sent,
    set phase(p: string) {
      phase = p
    },
    get phase() {
      return phase
    },
    async stop(): Promise<Sent[]> {
      stopped = true
      await running
      return sent
    },
  }
}

/** Sums a counter's samples in Prometheus text whose labels include all of `labels`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line)
    if (!match || match[1] !== name) continue
    const set = match[2] ?? ''
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) sum += Number(match[3])
  }
  return sum
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
