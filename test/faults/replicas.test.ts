import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { BenchResult, StepResult } from '../../src/bench/types.js'
import { HELIX_BIN, runHelixJson, tempDir } from '../helpers/cli.js'
import { scaleModel, writeOnnx } from '../helpers/onnx-models.js'
import { type ReplicaCluster, startReplicaCluster } from '../helpers/replicas.js'
import { hasTool } from '../helpers/tools.js'

/**
 * Load and faults on the production shape: the generated nginx (TLS) in front of two `helix serve`
 * replicas sharing PostgreSQL and Redis, loaded by `helix bench` (open loop, every request counted).
 * This is the CI profile, scaled down in rate and duration; `npm run verify` runs the full profile
 * (bench/nginx-replicas.js: 1000 connections, 60 s, the stress ramp to the first error).
 */

const RATE = Number(process.env.HELIX_REPLICAS_RATE ?? 300)
const CONNECTIONS = Number(process.env.HELIX_REPLICAS_CONNECTIONS ?? 200)

const hasTools = hasTool('nginx') && hasTool('redis-server') && hasTool('openssl')

describe.skipIf(!hasTools)(
  'nginx in front of two replicas: load, a killed replica, a rolling restart',
  () => {
    let cluster: ReplicaCluster
    let cleanup: () => Promise<void>

    /** `helix bench` through nginx at `rate` req/s for `seconds`; `during` runs once the load is on. */
    async function load(
      rate: number,
      seconds: number,
      during?: () => Promise<unknown>,
      timeout = '10s',
    ): Promise<StepResult> {
      const bench = runHelixJson<BenchResult>(
        [
          'bench',
          '--url',
          cluster.url,
          '--cacert',
          cluster.caFile,
          '--key',
          cluster.key,
          '--model',
          'scale',
          '--rate',
          String(rate),
          '--connections',
          String(CONNECTIONS),
          '-d',
          `${seconds}s`,
          '--warmup',
          '0s',
          '--timeout',
          timeout,
        ],
        { timeout: (seconds + 60) * 1000 },
      )
      const side = during?.()
      const [result] = await Promise.all([bench, side])
      return result.steps[0]
    }

    beforeAll(async () => {
      let dir: string
      ;({ dir, cleanup } = await tempDir())
      const model = await writeOnnx(join(dir, 'scale.onnx'), scaleModel(3))
      cluster = await startReplicaCluster({ helixBin: HELIX_BIN, models: { scale: model } })
    }, 180_000)

    afterAll(async () => {
      await cluster?.stop()
      await cleanup?.()
    })

    it('serves steady load through nginx with 0 errors, spread over both replicas', async () => {
      const step = await load(RATE, 8)
      expect(step.errors).toEqual({})
      expect(step.requests).toBeGreaterThan(RATE * 8 * 0.8)
      const lines = (await readFile(cluster.accessLog, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l))
      const served = new Set(lines.filter((l) => l.upstream_status === '200').map((l) => l.upstream_addr))
      expect(served).toEqual(new Set(cluster.replicas.map((r) => `127.0.0.1:${r.port}`)))
    }, 120_000)

    it('a replica killed with SIGKILL fails only its in-flight requests, then 0 errors', async () => {
      const killAt = 3
      let killed: { signal: NodeJS.Signals | null } | undefined
      const step = await load(RATE, 9, async () => {
        await new Promise((r) => setTimeout(r, killAt * 1000))
        killed = await cluster.kill(1, 'SIGKILL')
      })
      expect(killed?.signal).toBe('SIGKILL')
      // What was in flight on the killed replica when it died: nginx does not resend a POST it had
      // sent (it may not be idempotent), so those fail with 502; at this rate they are a handful.
      expect(step.errorCount).toBeLessThanOrEqual(Math.max(20, RATE / 10))
      for (const kind of Object.keys(step.errors)) expect(kind).toMatch(/^status 50[24]$/)
      // Two seconds after the kill nginx has marked the replica down: every request succeeds.
      const after = step.timeline.filter((p) => p.second >= killAt + 2)
      expect(after.length).toBeGreaterThan(2)
      expect(after.reduce((n, p) => n + p.errors, 0)).toBe(0)
      // The survivor serves everything meanwhile; the killed replica comes back.
      await cluster.restart(1)
      expect(await load(RATE, 3)).toMatchObject({ errorCount: 0 })
    }, 120_000)

    it('a replica stopped with SIGTERM under load (a rolling restart) answers every request it received', async () => {
      let stopped: { code: number | null } | undefined
      const step = await load(RATE, 8, async () => {
        await new Promise((r) => setTimeout(r, 2000))
        stopped = await cluster.kill(0, 'SIGTERM')
        await cluster.restart(0)
      })
      expect(stopped?.code).toBe(0)
      // Every request is answered. The draining replica keeps its idle keep-alive connections longer
      // than nginx keeps an idle upstream connection (drain_idle_grace_s 5 s against keepalive_timeout
      // 4 s), so nginx retires them itself and never writes a POST on one the replica is closing (a
      // POST lost that way is not resent: it may not be idempotent).
      expect(step.errors).toEqual({})
      expect(step.requests).toBeGreaterThan(RATE * 8 * 0.8)
    }, 120_000)

    it('a stress ramp past capacity is refused or delayed, never crashes, and the service recovers', async () => {
      const before = await Promise.all(cluster.replicas.map((_, i) => cluster.rss(i)))
      const steps: StepResult[] = []
      for (const rate of [RATE * 4, RATE * 20]) {
        const step = await load(rate, 4, undefined, '5s')
        steps.push(step)
        console.log(
          `ramp rate=${rate}: ${step.throughput.toFixed(0)} req/s served, p95 ${step.latency.p95} ms, errors ${JSON.stringify(step.errors)}`,
        )
      }
      // Whatever broke at the top of the ramp was an answer (429/503/504) or a client timeout, never a
      // reset or a refused connection, which is what a crashed replica gives.
      for (const step of steps)
        for (const kind of Object.keys(step.errors))
          expect(kind).toMatch(/^(status (429|502|503|504)|timeout)$/)
      for (const replica of cluster.replicas) expect(replica.child.exitCode).toBeNull()
      // Afterwards: the normal rate is served without errors, and memory settles near where it was.
      await new Promise((r) => setTimeout(r, 2000))
      expect(await load(RATE, 4)).toMatchObject({ errorCount: 0 })
      const after = await Promise.all(cluster.replicas.map((_, i) => cluster.rss(i)))
      for (let i = 0; i < after.length; i++) expect(after[i]).toBeLessThan(before[i] + 256 * 2 ** 20)
    }, 180_000)
  },
)
