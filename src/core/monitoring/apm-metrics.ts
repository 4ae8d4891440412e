import { performance } from 'node:perf_hooks'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { HelixHome } from '../../shared/home.js'
import type { DatabasePool } from '../../state/db/pool.js'
import { currentKid } from '../../state/jwt/key-set.js'
import { readKeySet } from '../../state/jwt/key-store.js'

/**
 * helix_nodejs_eventloop_utilization_ratio: the share of time the event loop was busy since the last
 * scrape (prom-client's default metrics already give lag percentiles, GC durations and heap sizes).
 */
export function registerEventLoopUtilization(registry: Registry): void {
  let last = performance.eventLoopUtilization()
  new Gauge({
    name: 'helix_nodejs_eventloop_utilization_ratio',
    help: 'Share of time the event loop was busy (not idle in the poller) since the previous scrape.',
    registers: [registry],
    collect() {
      const now = performance.eventLoopUtilization()
      this.set(performance.eventLoopUtilization(now, last).utilization)
      last = now
    },
  })
}

/**
 * The database pool and a cheap probe: helix_db_up from `SHOW server_version` every `intervalMs`
 * (1 when it answered), connections by state at scrape time, and errors (failed probes and idle
 * connections the server dropped). Returns a stop function.
 */
export function registerDatabaseMetrics(
  registry: Registry,
  db: DatabasePool,
  intervalMs = 15_000,
): () => void {
  const registers = [registry]
  const up = new Gauge({
    name: 'helix_db_up',
    help: '1 when the last database probe (SHOW server_version) answered, else 0.',
    registers,
  })
  const errors = new Counter({
    name: 'helix_db_errors_total',
    help: 'Database errors seen by the daemon: failed probes and connections lost while idle.',
    registers,
  })
  errors.inc(0)
  new Gauge({
    name: 'helix_db_pool_connections',
    help: 'Connections of the database pool by state: total (open), idle, in_use, waiting (requests queued for one).',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const pool = db.pool
      this.set({ state: 'total' }, pool.totalCount)
      this.set({ state: 'idle' }, pool.idleCount)
      this.set({ state: 'in_use' }, pool.totalCount - pool.idleCount)
      this.set({ state: 'waiting' }, pool.waitingCount)
    },
  })
  const probeLatency = new Gauge({
    name: 'helix_db_probe_seconds',
    help: 'How long the last database probe took.',
    registers,
  })
  const onIdleError = () => errors.inc()
  db.pool.on('error', onIdleError)
  let running = false
  const probe = async () => {
    if (running) return
    running = true
    try {
      const report = await db.health()
      up.set(report.ok ? 1 : 0)
      probeLatency.set(report.latencyMs / 1000)
      if (!report.ok) errors.inc()
    } finally {
      running = false
    }
  }
  void probe()
  const timer = setInterval(() => void probe(), intervalMs)
  timer.unref()
  return () => {
    clearInterval(timer)
    db.pool.off('error', onIdleError)
  }
}

/** helix_redis_roundtrip_seconds: a PING to the configured Redis every `intervalMs`. */
export function registerRedisMetrics(
  registry: Registry,
  redis: { roundTrip(): Promise<number> },
  intervalMs = 15_000,
): () => void {
  const registers = [registry]
  const roundTrip = new Histogram({
    name: 'helix_redis_roundtrip_seconds',
    help: 'Round trip of a PING to the Redis the rate limits live in.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers,
  })
  const up = new Gauge({ name: 'helix_redis_up', help: '1 when the last PING answered, else 0.', registers })
  let running = false
  const ping = async () => {
    if (running) return
    running = true
    try {
      roundTrip.observe(await redis.roundTrip())
      up.set(1)
    } catch {
      up.set(0)
    } finally {
      running = false
    }
  }
  void ping()
  const timer = setInterval(() => void ping(), intervalMs)
  timer.unref()
  return () => clearInterval(timer)
}

/**
 * helix_jwt_key_age_seconds (age of the current signing key, read from keys/keys.json at scrape
 * time) and helix_jwt_key_rotation_seconds (jwt.rotate_after_days): the alert fires when age > period.
 */
export function registerJwtKeyMetrics(registry: Registry, home: HelixHome, rotateAfterDays: number): void {
  new Gauge({
    name: 'helix_jwt_key_rotation_seconds',
    help: 'The configured rotation period of the JWT signing key (jwt.rotate_after_days), in seconds.',
    registers: [registry],
  }).set(rotateAfterDays * 86_400)
  new Gauge({
    name: 'helix_jwt_key_age_seconds',
    help: 'Age of the current JWT signing key, in seconds.',
    registers: [registry],
    async collect() {
      this.reset()
      const set = await readKeySet(home).catch(() => undefined)
      const kid = set ? currentKid(set) : undefined
      if (set && kid) this.set((Date.now() - Date.parse(set.keys[kid].created_at)) / 1000)
    },
  })
}
