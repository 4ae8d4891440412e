import { chmod, writeFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { delimiter, join } from 'node:path'
import { type ClientReadableStream, type Metadata, type ServiceError, status } from '@grpc/grpc-js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { renderTop } from '../../src/cli/output/top.js'
import { createAccount } from '../../src/core/identity/accounts.js'
import { CLI_ACTOR, createKey } from '../../src/core/identity/api-keys.js'
import { createModelService, type HelixModelService } from '../../src/core/infer/model-service.js'
import { HelixMetrics } from '../../src/core/metrics.js'
import { type StatsSnapshot, watchStats } from '../../src/grpc/monitoring-client.js'
import { type GrpcServer, type GrpcServerDeps, startGrpcServer } from '../../src/grpc/server.js'
import { parseConfig } from '../../src/shared/config.js'
import { PACKAGE_VERSION } from '../../src/shared/package-version.js'
import { NVIDIA_SMI_FIXTURES } from '../core/gpu/fake-nvidia-smi.js'
import { identitySuite } from '../core/identity/identity-harness.js'
import { tempDir } from '../helpers/cli.js'
import { addModel, addToRepository } from '../helpers/onnx-models.js'
import { modelRepository } from '../http/app/fixtures.js'
import { bytesOf, client, type TestClient } from './fixtures.js'

const MONITORING = 'helix.monitoring.v1.MonitoringService'
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const DAY_MS = 86_400_000

/** proto3 leaves zero values out of decoded messages; 64-bit counters arrive as decimal strings. */
const n = (value: unknown) => Number(value ?? 0)

interface Histogram {
  count?: string
  sum?: number
  p50?: number
  p99?: number
  buckets: { le: number; count?: string }[]
}
interface VersionStats {
  version?: string
  state?: string
  requests?: string
  successes?: string
  failures?: string
  outcomes: { status: string; protocol: string; count: string }[]
  queue_seconds: Histogram
  compute_seconds: Histogram
}
interface ModelStats {
  name: string
  requests?: string
  successes?: string
  failures?: string
  versions: VersionStats[]
  batch_size: Histogram
}
interface Alert {
  name: string
  severity: string
  labels: Record<string, string>
  value?: number
  threshold?: number
  window_seconds?: number
}
interface ProtocolRequests {
  protocol: string
  requests?: string
  failures?: string
  server_errors?: string
}
interface ServerStats {
  version: string
  started_at: string
  uptime_seconds: number
  node_version: string
  pid: number
  memory: { rss_bytes: string; heap_used_bytes: string }
  cpu: { user_seconds: number; cores: number; load_average: number[] }
  event_loop: { window_seconds?: number }
  open_streams?: number
  ready?: boolean
  draining?: boolean
  models_ready?: number
  requests: ProtocolRequests[]
  inferences: { protocol: string; requests?: string; successes?: string; failures?: string }[]
}
interface Snapshot {
  sequence: string
  at: string
  server: ServerStats
  models: ModelStats[]
  alerts: Alert[]
  gpus?: { gpus: unknown[]; reason?: string }
}

const silent = { debug() {}, info() {}, warn() {}, error() {} }

function startServer(deps: Omit<GrpcServerDeps, 'logger'> & { logger?: GrpcServerDeps['logger'] }) {
  return startGrpcServer(
    { host: '127.0.0.1', port: 0, maxMessageBytes: 64 * 1024 * 1024 },
    { logger: silent, ...deps },
  )
}

/** WatchStats as a readable stream, with every status it ends with kept. */
function watch(c: TestClient, request: Record<string, unknown>) {
  const stream = (c.raw.WatchStats as (req: unknown, md: Metadata) => ClientReadableStream<Snapshot>).call(
    c.raw,
    request,
    c.metadata(),
  )
  const snapshots: Snapshot[] = []
  stream.on('data', (s: Snapshot) => snapshots.push(s))
  const ended = new Promise<{ code: status; details: string }>((resolve) => {
    stream.on('error', (err: ServiceError) => resolve({ code: err.code, details: err.details }))
    stream.on('status', (s: { code: status; details: string }) => {
      if (s.code === status.OK) resolve(s)
    })
  })
  const received = (count: number) =>
    new Promise<Snapshot[]>((resolve, reject) => {
      const check = () => {
        if (snapshots.length >= count) resolve(snapshots.slice(0, count))
      }
      stream.on('data', check)
      void ended.then((s) => reject(new Error(`stream ended (${status[s.code]}) after ${snapshots.length}`)))
      check()
    })
  return { stream, snapshots, ended, received }
}

async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const value = await read()
    if (ok(value) || Date.now() > deadline) return value
    await new Promise((r) => setTimeout(r, 10))
  }
}

/**
 * nvidia-smi for both queries helix sends: GPU discovery goes to the recorded-output stand-in of
 * test/fixtures, the live-stats query prints FAKE_NVIDIA_SMI_STATS_OUTPUT (a real recording too).
 * It insists on the exact arguments, so the tests also prove the query is the recorded one.
 */
async function fakeNvidiaSmiBoth(stats: string, discovery: string, exitCode = 0) {
  const dir = await tempDir('helix-fake-smi-both-')
  const statsQuery =
    '--query-gpu=index,uuid,name,memory.total,memory.used,memory.free,utilization.gpu,utilization.memory,temperature.gpu,power.draw,power.limit,driver_version,pci.bus_id,compute_cap --format=csv,noheader,nounits'
  const script = join(dir.dir, 'nvidia-smi')
  await writeFile(
    script,
    `#!/bin/sh\nif [ "$*" = "${statsQuery}" ]; then cat "$FAKE_NVIDIA_SMI_STATS_OUTPUT"; exit "\${FAKE_NVIDIA_SMI_EXIT:-0}"; fi\nexec "${join(NVIDIA_SMI_FIXTURES, 'fake-nvidia-smi')}" "$@"\n`,
  )
  await chmod(script, 0o755)
  return {
    env: {
      PATH: `${dir.dir}${delimiter}${process.env.PATH ?? ''}`,
      FAKE_NVIDIA_SMI_OUTPUT: join(NVIDIA_SMI_FIXTURES, discovery),
      FAKE_NVIDIA_SMI_STATS_OUTPUT: join(NVIDIA_SMI_FIXTURES, stats),
      FAKE_NVIDIA_SMI_EXIT: String(exitCode),
    },
    cleanup: dir.cleanup,
  }
}

const a = [1, 2, 3, 4, 5, 6, 7, 8]
const b = [10, 20, 30, 40, 50, 60, 70, 80]
const addRequest = {
  model_name: 'add',
  inputs: [
    { name: 'a', datatype: 'FP32', shape: [2, 4] },
    { name: 'b', datatype: 'FP32', shape: [2, 4] },
  ],
  raw_input_contents: [bytesOf(new Float32Array(a)), bytesOf(new Float32Array(b))],
}

describe('helix.monitoring.v1.MonitoringService with authentication off', () => {
  let repo: Awaited<ReturnType<typeof modelRepository>>
  let service: HelixModelService
  let metrics: HelixMetrics
  let server: GrpcServer
  let monitoring: TestClient
  let inference: TestClient
  let fakeSmi: Awaited<ReturnType<typeof fakeNvidiaSmiBoth>>
  const warnings: string[] = []

  beforeAll(async () => {
    repo = await modelRepository()
    service = await createModelService({ repositoryDir: repo.dir, defaultDevice: 'cpu' })
    const now = Date.now()
    metrics = new HelixMetrics(service, {
      defaultMetrics: false,
      certificates: () => [
        { cert: 'ca', notAfter: new Date(now + 3650 * DAY_MS) },
        { cert: 'server', notAfter: new Date(now + 20 * DAY_MS) },
        { cert: 'client', notAfter: new Date(now + 3 * DAY_MS) },
      ],
    })
    fakeSmi = await fakeNvidiaSmiBoth('h100-x1-full-query-loaded.csv', 'h100-x1.csv')
    server = await startServer({
      service,
      metrics,
      logger: { ...silent, warn: (_obj: object, msg?: string) => warnings.push(msg ?? '') },
      config: parseConfig({
        database: { url: 'postgres://helix:db-secret-1@db.internal:5432/helix' },
        redis: { url: 'redis://:redis-secret-2@cache.internal:6379' },
        mail: { smtp_url: 'smtps://mailer:smtp-secret-3@mail.internal:465' },
        tls: { warn_days: 30 },
      }),
      settings: {
        host: '127.0.0.1',
        port: 8080,
        grpcPort: 8081,
        grpcMaxMessageBytes: 1024 * 1024,
        tls: true,
        mtls: false,
        bodyLimitBytes: 2048,
        drainTimeoutMs: 5000,
        logLevel: 'info',
        logFormat: 'json',
        modelsDir: repo.dir,
      },
      nvidiaSmi: { env: fakeSmi.env },
    })
    monitoring = client(server.target, MONITORING)
    inference = client(server.target, 'inference.GRPCInferenceService')
    // Traffic the statistics must count exactly: 5 answered and 1 refused request for add, 2 for
    // version 2 of scale, 3 for a model that failed to load.
    for (let i = 0; i < 5; i++) await inference.call('ModelInfer', addRequest)
    await inference
      .call('ModelInfer', {
        ...addRequest,
        inputs: [addRequest.inputs[0], { ...addRequest.inputs[1], name: 'c' }],
      })
      .catch(() => {})
    for (let i = 0; i < 2; i++) {
      await inference.call('ModelInfer', {
        model_name: 'scale',
        model_version: '2',
        inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 4] }],
        raw_input_contents: [bytesOf(new Float32Array([1, 2, 3, 4]))],
      })
    }
    for (let i = 0; i < 3; i++)
      await inference.call('ModelInfer', { ...addRequest, model_name: 'broken' }).catch(() => {})
  }, 120_000)

  afterAll(async () => {
    monitoring?.close()
    inference?.close()
    await server?.shutdown(1000)
    await service?.close()
    await repo?.cleanup()
    await fakeSmi?.cleanup()
  })

  it('GetHealth reports the server ready and each version, a failed one with its reason', async () => {
    const health = await monitoring.call<{
      live: boolean
      ready: boolean
      draining?: boolean
      models: { name: string; version?: string; state: string; ready?: boolean; reason?: string }[]
      checked_at: string
    }>('GetHealth')
    expect(health).toMatchObject({ live: true, ready: true })
    expect(health.draining ?? false).toBe(false)
    expect(health.checked_at).toMatch(RFC3339)
    expect(health.models).toContainEqual(
      expect.objectContaining({ name: 'add', version: '1', state: 'READY', ready: true }),
    )
    const broken = health.models.find((m) => m.name === 'broken')
    expect(broken).toMatchObject({ state: 'UNAVAILABLE' })
    expect(broken?.ready ?? false).toBe(false)
    expect(broken?.reason).toBeTruthy()
    expect(health.models.filter((m) => m.name === 'scale').map((m) => m.version)).toEqual(['1', '2'])
  })

  it('ListModels lists versions with provider, device and queue; filters by name and readiness', async () => {
    const all = await monitoring.call<{ models: Record<string, unknown>[] }>('ListModels')
    expect(all.models.find((m) => m.name === 'add')).toMatchObject({
      version: '1',
      state: 'READY',
      ready: true,
      execution_provider: 'cpu',
      device: 'cpu',
      queue_capacity: 1024,
    })
    expect(all.models.find((m) => m.name === 'slow')).toMatchObject({ queue_capacity: 1 })
    const scale = await monitoring.call<{ models: { name: string; version: string }[] }>('ListModels', {
      name: 'scale',
    })
    expect(scale.models.map((m) => `${m.name}:${m.version}`)).toEqual(['scale:1', 'scale:2'])
    const ready = await monitoring.call<{ models: { name: string }[] }>('ListModels', { ready_only: true })
    expect(ready.models.map((m) => m.name)).toContain('add')
    expect(ready.models.map((m) => m.name)).not.toContain('broken')
    const unknown = await monitoring.failure('ListModels', { name: 'nope' })
    expect(unknown.code).toBe(status.NOT_FOUND)
    expect(unknown.metadata.get('helix-error-code')).toEqual(['MODEL_NOT_FOUND'])
  })

  it('GetModelStats counts every request by outcome and times queue, compute and batch sizes', async () => {
    const { models, collected_at } = await monitoring.call<{ models: ModelStats[]; collected_at: string }>(
      'GetModelStats',
      { name: 'add' },
    )
    expect(collected_at).toMatch(RFC3339)
    expect(models).toHaveLength(1)
    const add = models[0]
    expect([n(add.requests), n(add.successes), n(add.failures)]).toEqual([6, 5, 1])
    const v1 = add.versions.find((v) => v.version === '1')
    expect(v1).toMatchObject({
      state: 'READY',
      outcomes: [{ status: 'success', protocol: 'grpc', count: '5' }],
    })
    expect([n(v1?.requests), n(v1?.successes), n(v1?.failures)]).toEqual([5, 5, 0])
    for (const h of [v1?.queue_seconds, v1?.compute_seconds]) {
      expect(n(h?.count)).toBe(5)
      expect(h?.sum).toBeGreaterThan(0)
      // Cumulative buckets, and percentiles inside the bucket range.
      const counts = h?.buckets.map((bucket) => n(bucket.count)) ?? []
      expect(counts).toEqual([...counts].sort((x, y) => x - y))
      expect(counts.at(-1)).toBeLessThanOrEqual(5)
      expect(h?.p99).toBeGreaterThan(0)
      expect(h?.p99).toBeLessThanOrEqual(h?.buckets.at(-1)?.le ?? 0)
    }
    // The refused request failed before a version was chosen.
    const unversioned = add.versions.find((v) => (v.version ?? '') === '')
    expect(unversioned?.outcomes).toEqual([{ status: 'INVALID_INPUT', protocol: 'grpc', count: '1' }])
    expect(n(unversioned?.queue_seconds.count)).toBe(0)
    expect(unversioned?.queue_seconds.buckets).toEqual([])
    // Five requests of two rows, each alone in its batch.
    expect(n(add.batch_size.count)).toBe(5)
    expect(add.batch_size.sum).toBe(10)
    expect(add.batch_size.p50).toBeGreaterThan(1)
    expect(add.batch_size.p50).toBeLessThanOrEqual(2)

    const scale = await monitoring.call<{ models: ModelStats[] }>('GetModelStats', {
      name: 'scale',
      version: '2',
    })
    expect(scale.models[0].versions.map((v) => [v.version, n(v.requests)])).toEqual([['2', 2]])
    const all = await monitoring.call<{ models: ModelStats[] }>('GetModelStats')
    const broken = all.models.find((m) => m.name === 'broken')
    expect(n(broken?.failures)).toBe(3)
    expect(broken?.versions.flatMap((v) => v.outcomes)).toEqual([
      { status: 'MODEL_NOT_READY', protocol: 'grpc', count: '3' },
    ])
    expect(all.models.map((m) => m.name)).toContain('cls')

    expect((await monitoring.failure('GetModelStats', { name: 'nope' })).code).toBe(status.NOT_FOUND)
    expect((await monitoring.failure('GetModelStats', { name: 'scale', version: '9' })).code).toBe(
      status.NOT_FOUND,
    )
    const versionOnly = await monitoring.failure('GetModelStats', { version: '1' })
    expect(versionOnly.code).toBe(status.INVALID_ARGUMENT)
    expect(versionOnly.details).toMatch(/version needs name/)
  })

  it('GetServerStats describes the process and counts requests per protocol', async () => {
    const stats = await monitoring.call<ServerStats>('GetServerStats')
    expect(stats).toMatchObject({
      version: PACKAGE_VERSION,
      node_version: process.version,
      pid: process.pid,
      ready: true,
    })
    expect(stats.started_at).toMatch(RFC3339)
    expect(stats.uptime_seconds).toBeGreaterThan(0)
    expect(n(stats.memory.rss_bytes)).toBeGreaterThan(n(stats.memory.heap_used_bytes))
    expect(stats.cpu.user_seconds).toBeGreaterThan(0)
    expect(stats.cpu.cores).toBe(availableParallelism())
    expect(stats.cpu.load_average).toHaveLength(3)
    expect(stats.event_loop.window_seconds).toBeGreaterThan(0)
    expect(stats.models_ready).toBeGreaterThan(5)
    expect(stats.inferences.find((p) => p.protocol === 'grpc')).toEqual({
      protocol: 'grpc',
      requests: '11',
      successes: '7',
      failures: '4',
    })
    expect(n(stats.inferences.find((p) => p.protocol === 'rest')?.requests)).toBe(0)
    const rest = stats.requests.find((p) => p.protocol === 'rest')
    expect(n(rest?.requests)).toBe(0)
    const grpc = stats.requests.find((p) => p.protocol === 'grpc')
    // Eleven inferences and the monitoring calls before this one.
    expect(n(grpc?.requests)).toBeGreaterThan(11)
    // The three calls to the broken model are UNAVAILABLE, a 503; the refused one INVALID_ARGUMENT, a 400.
    expect(n(grpc?.server_errors)).toBe(3)
    expect(n(grpc?.failures)).toBeGreaterThanOrEqual(4)
  })

  it('ListActiveAlerts names what is wrong now, as the generated Prometheus rules do', async () => {
    const before = await monitoring.call<ServerStats>('GetServerStats')
    const { alerts, evaluated_at } = await monitoring.call<{ alerts: Alert[]; evaluated_at: string }>(
      'ListActiveAlerts',
    )
    expect(evaluated_at).toMatch(RFC3339)
    const names = alerts.map(
      (x) =>
        `${x.name}${x.labels?.cert ? `:${x.labels.cert}` : ''}${x.labels?.model ? `:${x.labels.model}` : ''}`,
    )
    expect(names).toEqual([
      'HelixCertificateExpiringCritical:client',
      'HelixHighErrorRate',
      'HelixModelNotReady:broken',
      'HelixCertificateExpiringSoon:server',
    ])
    expect(alerts.map((x) => x.severity)).toEqual(['critical', 'critical', 'critical', 'warning'])
    const soon = alerts.find((x) => x.name === 'HelixCertificateExpiringSoon')
    expect(soon?.threshold).toBe(30 * 86_400)
    expect(soon?.value).toBeGreaterThan(19.9 * 86_400)
    expect(soon?.value).toBeLessThanOrEqual(20 * 86_400)
    // Three server errors among every gRPC call so far (the GetServerStats above included).
    const ratio = alerts.find((x) => x.name === 'HelixHighErrorRate')
    const grpc = before.requests.find((p) => p.protocol === 'grpc')
    expect(ratio?.value).toBeCloseTo(3 / (n(grpc?.requests) + 1), 10)
    expect(ratio?.threshold).toBe(0.05)
    expect(ratio?.window_seconds).toBeGreaterThan(0)
    expect(alerts.find((x) => x.name === 'HelixModelNotReady')?.labels).toEqual({
      model: 'broken',
      version: '1',
    })
  })

  it('ListGpus and GetGpuStats read nvidia-smi (a recorded H100)', async () => {
    const listed = await monitoring.call<{ gpus: Record<string, unknown>[]; reason?: string }>('ListGpus')
    expect(listed.reason ?? '').toBe('')
    expect(listed.gpus).toEqual([
      {
        index: 0,
        uuid: 'GPU-bb17be85-4f22-5bf6-7750-893db04333ed',
        name: 'NVIDIA H100 80GB HBM3',
        memory_total_mib: 81559,
        memory_used_mib: 1395,
        memory_free_mib: 80164,
        utilization_percent: 100,
        _utilization_percent: 'utilization_percent',
        // Every model here runs on the CPU.
        models: [],
      },
    ])
    const live = await monitoring.call<{ gpus: Record<string, unknown>[]; sampled_at: string }>('GetGpuStats')
    expect(live.sampled_at).toMatch(RFC3339)
    expect(live.gpus).toEqual([
      expect.objectContaining({
        index: 0,
        uuid: 'GPU-bb17be85-4f22-5bf6-7750-893db04333ed',
        name: 'NVIDIA H100 80GB HBM3',
        memory_total_mib: 81559,
        memory_used_mib: 1395,
        memory_free_mib: 79685,
        utilization_gpu_percent: 100,
        utilization_memory_percent: 9,
        temperature_celsius: 63,
        power_draw_watts: 684.69,
        power_limit_watts: 700,
        driver_version: '580.159.04',
        pci_bus_id: '00000000:00:06.0',
        compute_capability: '9.0',
      }),
    ])
  })

  it('without a GPU the GPU methods answer an empty list and why, never an error', async () => {
    const noSmi = await tempDir('helix-no-smi-')
    const driver = await fakeNvidiaSmiBoth('driver-error.txt', 'driver-error.txt', 9)
    const servers = await Promise.all([
      startServer({ service, nvidiaSmi: { env: { PATH: noSmi.dir } } }),
      startServer({ service, nvidiaSmi: { env: driver.env } }),
    ])
    try {
      const [none, broken] = servers.map((s) => client(s.target, MONITORING))
      for (const method of ['ListGpus', 'GetGpuStats']) {
        expect(await none.call(method)).toMatchObject({
          gpus: [],
          reason: 'nvidia-smi not found on PATH (no NVIDIA driver installed?)',
        })
        const failed = await broken.call<{ gpus: unknown[]; reason: string }>(method)
        expect(failed.gpus).toEqual([])
        expect(failed.reason).toBe(
          "nvidia-smi failed (exit 9): NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
        )
      }
      // A server started without settings has no configuration to report.
      expect((await none.failure('GetConfig')).code).toBe(status.NOT_FOUND)
      none.close()
      broken.close()
    } finally {
      await Promise.all(servers.map((s) => s.shutdown(1000)))
      await noSmi.cleanup()
      await driver.cleanup()
    }
  })

  it('GetConfig reports the settings in use and never a secret', async () => {
    const response = await monitoring.call<Record<string, Record<string, unknown>>>('GetConfig')
    expect(response.server).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      grpc_port: 8081,
      tls: true,
      drain_timeout_ms: 5000,
      body_limit_bytes: '2048',
    })
    expect(response.auth.enabled ?? false).toBe(false)
    expect(response.database).toMatchObject({ external: true, pool_size: 10 })
    expect(response.rate_limit).toMatchObject({ shared: true, per_key_per_min: 6000 })
    expect(response.mail).toMatchObject({ smtp: true })
    expect(response.tls).toMatchObject({ warn_days: 30 })
    expect(response.models).toMatchObject({ repository: repo.dir, device: 'auto', load: 'all' })
    expect(response.logging).toMatchObject({ level: 'info', format: 'json', requests: 'errors' })
    const text = JSON.stringify(response)
    for (const secret of ['db-secret-1', 'redis-secret-2', 'smtp-secret-3', 'db.internal', 'mail.internal'])
      expect(text).not.toContain(secret)
  })

  it('usage, audit and rate limits need the identity layer: NOT_FOUND with AUTH_DISABLED', async () => {
    for (const method of ['GetUsage', 'ListAuditEntries', 'GetRateLimits']) {
      const refused = await monitoring.failure(method)
      expect(refused.code, method).toBe(status.NOT_FOUND)
      expect(refused.metadata.get('helix-error-code')).toEqual(['AUTH_DISABLED'])
      expect(refused.details).toMatch(/authentication, which is off/)
    }
  })

  it('WatchStats sends a snapshot every interval until the client cancels', async () => {
    const watcher = watch(monitoring, { interval_ms: 100 })
    const snapshots = await watcher.received(3)
    watcher.stream.cancel()
    expect(snapshots.map((s) => s.sequence)).toEqual(['1', '2', '3'])
    const times = snapshots.map((s) => Date.parse(s.at))
    expect(times[1] - times[0]).toBeGreaterThanOrEqual(90)
    expect(times[2] - times[1]).toBeGreaterThanOrEqual(90)
    for (const s of snapshots) {
      expect(s.server.pid).toBe(process.pid)
      expect(s.server.open_streams).toBe(1)
      expect(n(s.models.find((m) => m.name === 'add')?.successes)).toBe(5)
      expect(s.alerts.map((x) => x.name)).toContain('HelixModelNotReady')
      expect(s.gpus).toBeUndefined()
    }
    expect((await watcher.ended).code).toBe(status.CANCELLED)
    // The server let go of the stream.
    const after = await until(
      () => monitoring.call<ServerStats>('GetServerStats'),
      (s) => (s.open_streams ?? 0) === 0,
    )
    expect(after.open_streams ?? 0).toBe(0)
  })

  it('WatchStats ends after max_snapshots, samples GPUs when asked, and refuses intervals out of bounds', async () => {
    const bounded = watch(monitoring, { interval_ms: 100, max_snapshots: 2, include_gpus: true })
    expect((await bounded.ended).code).toBe(status.OK)
    expect(bounded.snapshots).toHaveLength(2)
    expect(bounded.snapshots[0].gpus?.gpus).toHaveLength(1)
    for (const interval of [50, 60_001]) {
      const refused = watch(monitoring, { interval_ms: interval })
      const ended = await refused.ended
      expect(ended.code).toBe(status.INVALID_ARGUMENT)
      expect(ended.details).toMatch(/interval_ms must be 100 to 60000/)
      expect(refused.snapshots).toEqual([])
    }
  })

  it('a drain ends WatchStats cleanly with OK', async () => {
    const draining = await startServer({
      service,
      metrics,
      logger: { ...silent, warn: (_obj: object, msg?: string) => warnings.push(msg ?? '') },
    })
    const c = client(draining.target, MONITORING)
    const watcher = watch(c, { interval_ms: 60_000 })
    await watcher.received(1)
    const before = warnings.length
    await draining.shutdown(10_000)
    expect(await watcher.ended).toEqual(expect.objectContaining({ code: status.OK }))
    // The last snapshot says why the stream ends.
    expect(watcher.snapshots.map((s) => [s.sequence, s.server.draining ?? false])).toEqual([
      ['1', false],
      ['2', true],
    ])
    expect(watcher.snapshots[1].alerts.map((x) => x.name)).toContain('HelixDraining')
    // Nothing had to be cancelled at the drain timeout.
    expect(warnings.length).toBe(before)
    c.close()
  })

  it('a full queue raises HelixInferenceQueueSaturated while it lasts', async () => {
    // One place in the queue, and a request alone waits up to 3 s there for company.
    await addToRepository(repo.dir, 'gathering', addModel(), {
      config: { max_batch_size: 8, max_queue_delay_ms: 3000, queue: { max_size: 1 } },
    })
    await service.load('gathering')
    const waiting = inference.call('ModelInfer', { ...addRequest, model_name: 'gathering' })
    const full = await until(
      () => monitoring.call<{ models: { queue_depth?: number }[] }>('ListModels', { name: 'gathering' }),
      (r) => r.models[0].queue_depth === 1,
    )
    expect(full.models[0]).toMatchObject({ queue_depth: 1, queue_capacity: 1 })
    const { alerts } = await monitoring.call<{ alerts: Alert[] }>('ListActiveAlerts')
    const saturated = alerts.find((x) => x.name === 'HelixInferenceQueueSaturated')
    expect(saturated).toMatchObject({
      severity: 'warning',
      labels: { model: 'gathering', version: '1' },
      value: 1,
      threshold: 0.9,
    })
    const refused = await inference.failure('ModelInfer', { ...addRequest, model_name: 'gathering' })
    expect(refused.code).toBe(status.RESOURCE_EXHAUSTED)
    await waiting
    const after = await monitoring.call<{ alerts: Alert[] }>('ListActiveAlerts')
    expect(after.alerts.map((x) => x.name)).not.toContain('HelixInferenceQueueSaturated')
  })
})

describe('helix.monitoring.v1.MonitoringService with the identity layer', () => {
  const suite = identitySuite({ rate_limit: { per_key_per_min: 1000, per_ip_per_min: 100_000 } })
  let server: GrpcServer
  const keys: Record<string, { id: string; key: string }> = {}
  const users: Record<string, string> = {}
  const as = (key: string) => client(server.target, MONITORING, { token: keys[key].key })

  beforeAll(async () => {
    const deps = suite.d.identity.deps
    for (const email of ['ops@example.test', 'other@example.test']) {
      users[email] = (await createAccount(deps, { email, password: 'correct horse battery staple' })).user.id
    }
    const make = async (name: string, scopes: string[], extra: Record<string, unknown> = {}) => {
      const created = await createKey(deps, CLI_ACTOR, { name, scopes, ...extra })
      keys[name] = { id: created.id, key: created.key }
    }
    await make('infer', ['infer'], { userId: users['ops@example.test'] })
    await make('monitor', ['monitor'], {
      userId: users['ops@example.test'],
      rateLimitPerMin: 500,
      quotaRequests: 1000,
      quotaItems: 5000,
      quotaPeriod: 'day',
    })
    await make('other-monitor', ['monitor'], { userId: users['other@example.test'] })
    await make('service-monitor', ['monitor'])
    await make('admin', ['admin'])
    server = await startServer({
      service: suite.d.service,
      identity: suite.d.identity,
      metrics: new HelixMetrics(suite.d.service, { defaultMetrics: false }),
      config: deps.config,
    })
  })

  afterAll(async () => {
    await server?.shutdown(1000)
  })

  it('an infer-only key is refused every monitoring method (PERMISSION_DENIED); a monitor key passes', async () => {
    const infer = as('infer')
    const monitor = as('monitor')
    const methods = [
      'GetHealth',
      'ListGpus',
      'GetGpuStats',
      'ListModels',
      'GetModelStats',
      'GetServerStats',
      'GetUsage',
      'ListAuditEntries',
      'ListActiveAlerts',
      'GetConfig',
    ]
    for (const method of methods) {
      const refused = await infer.failure(method)
      expect(refused.code, method).toBe(status.PERMISSION_DENIED)
    }
    expect((await infer.failure('GetServerStats')).details).toMatch(/lacks the monitor scope/)
    const stream = watch(infer, {})
    expect((await stream.ended).code).toBe(status.PERMISSION_DENIED)
    for (const method of methods.filter((m) => m !== 'ListAuditEntries')) {
      await expect(monitor.call(method), method).resolves.toBeDefined()
    }
    const watched = watch(monitor, { interval_ms: 100, max_snapshots: 1 })
    expect((await watched.ended).code).toBe(status.OK)
    expect(watched.snapshots).toHaveLength(1)
    // The audit log is for administrators only.
    expect((await monitor.failure('ListAuditEntries')).code).toBe(status.PERMISSION_DENIED)
    const config = await monitor.call<{ auth: { enabled: boolean } }>('GetConfig')
    expect(config.auth.enabled).toBe(true)
    const anonymous = client(server.target, MONITORING)
    expect((await anonymous.failure('GetServerStats')).code).toBe(status.UNAUTHENTICATED)
    for (const c of [infer, monitor, anonymous]) c.close()
  })

  it('helix top reads WatchStats with a monitor key and draws models and per-second rates; other keys get a hint', async () => {
    const frames: StatsSnapshot[] = []
    const options = { tls: false, intervalMs: 150, maxSnapshots: 2, includeGpus: false }
    const traffic = client(server.target, 'inference.GRPCInferenceService', { token: keys.admin.key })
    await watchStats(server.target, { ...options, maxSnapshots: 1, apiKey: keys.monitor.key }, (s) =>
      frames.push(s),
    )
    for (let i = 0; i < 4; i++) await traffic.call('ModelInfer', addRequest)
    traffic.close()
    await watchStats(server.target, { ...options, maxSnapshots: 1, apiKey: keys.monitor.key }, (s) =>
      frames.push(s),
    )
    expect(frames).toHaveLength(2)
    const [first, second] = frames
    const requests = (f: StatsSnapshot) => Number(f.models.find((m) => m.name === 'add')?.requests ?? 0)
    expect(requests(second) - requests(first)).toBe(4)
    const elapsed = (Date.parse(second.at) - Date.parse(first.at)) / 1000
    const text = renderTop(second, first)
    const addRow = text.split('\n').find((line) => line.startsWith('add '))
    expect(addRow, text).toBeDefined()
    // The REQ/S column: the 4 calls over the seconds between the two snapshots.
    expect(addRow).toContain(
      (4 / elapsed >= 100 ? (4 / elapsed).toFixed(0) : (4 / elapsed).toFixed(1)).toString(),
    )
    expect(text).toMatch(/^helix \S+ +pid \d+ +up /)
    expect(text).toMatch(/requests .* grpc \d+ \([\d.]+\/s, \d+ failed/)

    const refused = await watchStats(server.target, { ...options, apiKey: keys.infer.key }, () => {}).catch(
      (e) => e,
    )
    expect(refused).toMatchObject({
      code: 'FORBIDDEN',
      hint: expect.stringMatching(/monitor or admin scope/),
    })
    const anonymous = await watchStats(server.target, options, () => {}).catch((e) => e)
    expect(anonymous).toMatchObject({
      code: 'UNAUTHENTICATED',
      hint: expect.stringMatching(/--key or HELIX_API_KEY/),
    })
  })

  it('GetUsage: each key counts its calls; users see their own keys, admin every key', async () => {
    const inference = client(server.target, 'inference.GRPCInferenceService', { token: keys.infer.key })
    for (let i = 0; i < 3; i++) await inference.call('ModelInfer', addRequest)
    inference.close()

    type Usage = {
      since: string
      until: string
      keys: {
        key_id: string
        name: string
        user_id?: string
        usage: { requests?: string; errors?: string; items?: string }
        quota?: { period: string; requests_limit: string; used_requests?: string; resets_at: string }
        hours: { hour: string; usage: { requests?: string } }[]
      }[]
      totals: { requests?: string }
    }
    const monitor = as('monitor')
    const own = await monitor.call<Usage>('GetUsage', { include_hours: true })
    expect(own.since).toMatch(RFC3339)
    expect(Date.parse(own.until) - Date.parse(own.since)).toBe(30 * DAY_MS)
    expect(own.keys.map((k) => k.name).sort()).toEqual(['infer', 'monitor'])
    const inferUsage = own.keys.find((k) => k.name === 'infer')
    expect(inferUsage?.user_id).toBe(users['ops@example.test'])
    expect([n(inferUsage?.usage.requests), n(inferUsage?.usage.errors), n(inferUsage?.usage.items)]).toEqual([
      3, 0, 6,
    ])
    expect(inferUsage?.hours).toHaveLength(1)
    expect(inferUsage?.hours[0].hour).toMatch(/T\d{2}:00:00\.000Z$/)
    expect(n(inferUsage?.hours[0].usage.requests)).toBe(3)
    expect(inferUsage?.quota).toBeUndefined()
    const monitorUsage = own.keys.find((k) => k.name === 'monitor')
    // Monitoring calls are counted too: those of the test before, and none refused.
    expect(n(monitorUsage?.usage.requests)).toBeGreaterThan(10)
    expect(monitorUsage?.quota).toMatchObject({ period: 'day', requests_limit: '1000' })
    expect(n(monitorUsage?.quota?.used_requests)).toBe(n(monitorUsage?.usage.requests))
    expect(Date.parse(monitorUsage?.quota?.resets_at ?? '')).toBeGreaterThan(Date.now())
    expect(n(own.totals.requests)).toBe(n(inferUsage?.usage.requests) + n(monitorUsage?.usage.requests))

    const one = await monitor.call<Usage>('GetUsage', { key_id: keys.infer.id })
    expect(one.keys.map((k) => k.key_id)).toEqual([keys.infer.id])
    // Another user's key reads as absent; another user's keys are refused.
    expect((await monitor.failure('GetUsage', { key_id: keys['other-monitor'].id })).code).toBe(
      status.NOT_FOUND,
    )
    const others = await monitor.failure('GetUsage', { user_id: users['other@example.test'] })
    expect(others.code).toBe(status.PERMISSION_DENIED)
    // A service key sees itself.
    const service = as('service-monitor')
    expect((await service.call<Usage>('GetUsage')).keys.map((k) => k.name)).toEqual(['service-monitor'])

    const admin = as('admin')
    const every = await admin.call<Usage>('GetUsage')
    expect(every.keys.map((k) => k.name).sort()).toEqual([
      'admin',
      'infer',
      'monitor',
      'other-monitor',
      'service-monitor',
    ])
    const theirs = await admin.call<Usage>('GetUsage', { user_id: users['other@example.test'] })
    expect(theirs.keys.map((k) => k.name)).toEqual(['other-monitor'])
    // A span in the past holds nothing.
    const past = await admin.call<Usage>('GetUsage', {
      since: '2020-01-01T00:00:00Z',
      until: '2020-01-02T00:00:00+00:00',
      key_id: keys.infer.id,
    })
    expect(n(past.keys[0].usage.requests)).toBe(0)
    for (const bad of [
      { since: 'yesterday' },
      { since: '2025-01-02T00:00:00Z', until: '2025-01-01T00:00:00Z' },
      { user_id: 'someone' },
    ]) {
      expect((await admin.failure('GetUsage', bad)).code).toBe(status.INVALID_ARGUMENT)
    }
    for (const c of [monitor, service, admin]) c.close()
  })

  it('ListAuditEntries lists the newest entries first, filtered, for admin only', async () => {
    const admin = as('admin')
    type Entries = {
      entries: {
        id: string
        at: string
        actor: string
        action: string
        target: string
        details_json: string
      }[]
    }
    const created = await admin.call<Entries>('ListAuditEntries', { action_prefix: 'apikey.' })
    const targets = created.entries.filter((e) => e.action === 'apikey.create').map((e) => e.target)
    expect(targets.slice(0, 5)).toEqual(
      ['admin', 'service-monitor', 'other-monitor', 'monitor', 'infer'].map((k) => `apikey:${keys[k].id}`),
    )
    const newest = created.entries[0]
    expect(newest.at).toMatch(RFC3339)
    expect(newest.actor).toBe('cli')
    expect(JSON.parse(newest.details_json)).toEqual({ scopes: ['admin'], owner: null })
    const ids = created.entries.map((e) => BigInt(e.id))
    expect(ids).toEqual([...ids].sort((x, y) => (x > y ? -1 : x < y ? 1 : 0)))
    expect((await admin.call<Entries>('ListAuditEntries', { limit: 2 })).entries).toHaveLength(2)
    const future = await admin.call<Entries>('ListAuditEntries', {
      since: new Date(Date.now() + DAY_MS).toISOString(),
    })
    expect(future.entries).toEqual([])
    expect((await admin.call<Entries>('ListAuditEntries', { action_prefix: 'nothing.' })).entries).toEqual([])
    for (const bad of [{ limit: 1001 }, { actor_user_id: 'someone' }, { since: '2025-13-01' }]) {
      expect((await admin.failure('ListAuditEntries', bad)).code).toBe(status.INVALID_ARGUMENT)
    }
    admin.close()
  })

  it('GetRateLimits shows the caller its own limits; asking spends nothing', async () => {
    type Limits = {
      subject: string
      policies: {
        name: string
        limit: string
        window_seconds: number
        remaining: string
        reset_seconds: number
      }[]
      quota?: { period: string; requests_limit: string; used_requests?: string }
    }
    const monitor = as('monitor')
    const first = await monitor.call<Limits>('GetRateLimits')
    const second = await monitor.call<Limits>('GetRateLimits')
    expect(first.subject).toBe(`key:${keys.monitor.id}`)
    expect(first.policies.map((p) => [p.name, p.limit, p.window_seconds])).toEqual([
      ['per-ip', '100000', 60],
      ['per-key', '500', 60],
      ['quota-day', '1000', expect.any(Number)],
      ['quota-items-day', '5000', expect.any(Number)],
    ])
    const remaining = (l: Limits, name: string) => n(l.policies.find((p) => p.name === name)?.remaining)
    // The second call counted once against each policy, the reading itself not at all.
    for (const name of ['per-ip', 'per-key', 'quota-day'])
      expect(remaining(first, name) - remaining(second, name)).toBe(1)
    // Monitoring calls carry no items.
    expect(remaining(second, 'quota-items-day')).toBe(5000)
    expect(remaining(first, 'per-key')).toBeLessThan(500)
    expect(first.quota).toMatchObject({ period: 'day', requests_limit: '1000' })
    // Any valid credential may read its own limits; none is UNAUTHENTICATED.
    const infer = as('infer')
    const inferLimits = await infer.call<Limits>('GetRateLimits')
    expect(inferLimits.subject).toBe(`key:${keys.infer.id}`)
    expect(inferLimits.policies.map((p) => [p.name, p.limit])).toEqual([
      ['per-ip', '100000'],
      ['per-key', '1000'],
    ])
    expect(inferLimits.quota).toBeUndefined()
    const anonymous = client(server.target, MONITORING)
    expect((await anonymous.failure('GetRateLimits')).code).toBe(status.UNAUTHENTICATED)
    for (const c of [monitor, infer, anonymous]) c.close()
  })
})
