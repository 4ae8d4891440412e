import { availableParallelism } from 'node:os'
import { firstLine } from '../../shared/errors.js'
import type { Backend, DevicePolicy } from '../backends/backend.js'
import { BackendLoadError } from '../backends/onnx-backend.js'
import {
  BACKENDS,
  type BackendFactory,
  formatOf,
  type ModelFormat,
  type PytorchSettings,
} from '../backends/registry.js'
import type { WorkerPool } from '../backends/worker-pool.js'
import type { Isolation } from '../backends/worker-session.js'
import { discoverGpus, type GpuDiscovery } from '../gpu/nvidia-smi.js'
import { GpuReservations } from '../gpu/placement.js'
import type { CoreLogger } from '../logger.js'
import { modelLoadFailed, modelNotFound, modelNotReady } from './errors.js'
import { hasBatchDimension } from './input-validation.js'
import { LoadLimiter } from './load-limiter.js'
import { LoadStats } from './load-stats.js'
import { estimateModelMemory, MiB } from './memory-budget.js'
import { type ModelConfig, parseModelConfig } from './model-config.js'
import { type ModelEntry, type ModelTable, unavailable, type VersionSlot } from './model-table.js'
import {
  modelFile,
  type RepositoryModel,
  readRepositoryModel,
  scanRepository,
  versionFile,
} from './repository.js'
import { ResponseCache } from './response-cache.js'
import { Scheduler } from './scheduler.js'
import { selectVersions } from './version-policy.js'
import { warmupRequests } from './warmup.js'

/** Defaults for models whose config leaves batching out and whose dim 0 is dynamic (Triton-like). */
export const DEFAULT_MAX_BATCH_SIZE = 32
export const DEFAULT_MAX_QUEUE_DELAY_MS = 2
export const DEFAULT_QUEUE_SIZE = 1024
export const DEFAULT_CACHE_ENTRIES = 1024
const GPU_SNAPSHOT_TTL_MS = 5000
/** How long a request waits for its model to load on demand before a 503 (models.lazy_load_timeout_ms). */
export const DEFAULT_LAZY_LOAD_TIMEOUT_MS = 30_000
/** Startup progress is logged at most this often (and once at the end). */
const PROGRESS_EVERY_MS = 2000
/** The reason of a version unloaded to keep within models.memory_budget; its next request loads it again. */
export const EVICTED = 'unloaded: least recently used, to stay within models.memory_budget'

/**
 * Loads at once when the config names no bound: opening a session is CPU work on the worker pool's
 * threads plus file reads, so twice the cores keeps every thread busy without a thousand loads
 * holding their files and buffers at the same moment.
 */
export function defaultLoadConcurrency(cores = availableParallelism()): number {
  return Math.max(2, cores * 2)
}

/** How the lifecycle loads: the repository, startup policy, limits and the backends by format. */
export interface LifecycleOptions {
  /** The model repository: <dir>/<name>/<version>/model.onnx (+ <name>/config.yaml). */
  repositoryDir: string
  /** Device policy for models whose config names none (helix.yaml models.device). */
  defaultDevice?: DevicePolicy
  /** GPU discovery; nvidia-smi by default. Runs once per burst of loads. */
  gpuDiscovery?: () => Promise<GpuDiscovery>
  /**
   * Which models to load at start (helix.yaml models.load): all of the repository (default), none,
   * the named ones, or lazy (each on its first request). Models not loaded are listed as
   * UNAVAILABLE with the reason.
   */
  startupModels?: 'all' | 'none' | 'lazy' | string[]
  /** How long a request waits for an on-demand load before MODEL_NOT_READY (default 30 s). */
  lazyLoadTimeoutMs?: number
  /**
   * Estimated bytes the loaded models may take (see memory-budget.ts); a load that would exceed it
   * unloads the least recently used idle models first. Absent: no budget.
   */
  memoryBudgetBytes?: number
  /** Models loading at once (default: defaultLoadConcurrency()). */
  loadConcurrency?: number
  /** The worker threads CPU sessions run in (the process-wide pool when absent). */
  workerPool?: WorkerPool
  /** How long an old version may take to finish its queued work after a reload or unload. */
  drainTimeoutMs?: number
  /**
   * Run sessions in worker threads unless a model's config says otherwise (config `worker_threads`);
   * absent: worker threads on the CPU provider.
   */
  workerThreads?: boolean
  /** Where ONNX instances run unless a model's config says otherwise (helix.yaml models.isolation). */
  isolation?: Isolation
  /** Backends by model format, over the built-in ones (a seam for tests and other runtimes). */
  backends?: Partial<Record<ModelFormat, BackendFactory>>
  /** The PyTorch backend's settings (helix.yaml backends.pytorch). */
  pytorch?: PytorchSettings
}

/**
 * Loading, reloading and unloading model versions (Triton's model lifecycle): startup policy, loads
 * on demand, load concurrency, the memory budget with least-recently-used unloading, warmup, and the
 * zero-downtime swap of a model's routing table.
 */
export class ModelLifecycle {
  private readonly reservations = new GpuReservations()
  private gpus?: { at: number; discovery: Promise<GpuDiscovery> }
  private startup: Promise<void> = Promise.resolve()
  started = false
  closed = false
  private readonly limiter: LoadLimiter
  /** Loads on demand in progress, by model: concurrent first requests share one. */
  private readonly onDemand = new Map<string, Promise<void>>()
  /** Estimated bytes of loads admitted under the memory budget and not finished yet. */
  private reservedBytes = 0
  /** Load times and failures by model (metrics). */
  readonly loadStats = new LoadStats()

  constructor(
    private readonly table: ModelTable,
    private readonly options: LifecycleOptions,
    private readonly logger: CoreLogger,
  ) {
    this.limiter = new LoadLimiter(Math.max(1, options.loadConcurrency || defaultLoadConcurrency()))
  }

  /** True while a model loads on demand: one request's wait, not the server's. */
  loadingOnDemand(model: string): boolean {
    return this.onDemand.has(model)
  }

  /**
   * Loads the startup models, up to the load concurrency at once, logging progress; a model that
   * fails (a bad file, no memory, no thread) is only marked UNAVAILABLE with its reason. The others
   * are listed as not loaded.
   */
  async start(): Promise<void> {
    const which = this.options.startupModels ?? 'all'
    this.startup = (async () => {
      const repository = await scanRepository(this.options.repositoryDir)
      const names = which === 'all' ? repository.map((m) => m.name) : Array.isArray(which) ? which : []
      const notLoaded =
        which === 'lazy'
          ? 'not loaded yet (models.load: lazy): it loads on its first request'
          : 'not loaded (models.load: none); load it with POST /v2/repository/models/{name}/load or `helix models load`'
      for (const model of repository) {
        if (!names.includes(model.name)) this.table.add(model.name).notLoaded = notLoaded
      }
      await this.loadAll(names)
      this.started = true
    })()
    await this.startup
  }
  private async loadAll(names: string[]): Promise<void> {
    if (names.length === 0) return
    const total = names.length
    let done = 0
    let failed = 0
    let loggedAt = performance.now()
    this.logger.info(
      { models: total, concurrency: this.limiter.limit },
      `loading ${total} model${total === 1 ? '' : 's'}`,
    )
    await Promise.all(
      names.map(async (name) => {
        try {
          await this.load(name)
        } catch (err) {
          failed++
          this.logger.error(
            { model: name, err: (err as Error).message },
            `model ${name} did not load completely`,
          )
        }
        done++
        if (done === total || performance.now() - loggedAt >= PROGRESS_EVERY_MS) {
          loggedAt = performance.now()
          this.logger.info({ loaded: done - failed, failed, total }, `models loaded: ${done}/${total}`)
        }
      }),
    )
  }
  /**
   * Whether a request for this model loads it first: never loaded under models.load lazy, or
   * unloaded or refused by the memory budget (in any mode); a load on demand already running is
   * shared. A model that failed for another reason waits for an explicit load.
   */
  loadsOnDemand(entry: ModelEntry | undefined): boolean {
    if (this.closed) return false
    if (!entry) return this.options.startupModels === 'lazy'
    if (this.onDemand.has(entry.name)) return true
    if (entry.loading.size > 0 || entry.problem) return false
    if (entry.versions.size === 0)
      return entry.notLoaded !== undefined && this.options.startupModels === 'lazy'
    for (const slot of entry.versions.values()) if (!slot.loadsOnRequest) return false
    return true
  }
  /**
   * Loads a model for a request, sharing the load with concurrent requests, and waits for it up to
   * lazyLoadTimeoutMs (the load itself goes on). A load that fails leaves the reason in the slots.
   */
  async loadOnDemand(model: string): Promise<ModelEntry> {
    let pending = this.onDemand.get(model)
    if (!pending) {
      pending = this.load(model)
        .catch(() => undefined)
        .finally(() => this.onDemand.delete(model))
      this.onDemand.set(model, pending)
    }
    const timeoutMs = this.options.lazyLoadTimeoutMs ?? DEFAULT_LAZY_LOAD_TIMEOUT_MS
    if (!(await settlesWithin(pending, timeoutMs))) {
      throw modelNotReady(
        model,
        `it is still loading after ${timeoutMs} ms (models.lazy_load_timeout_ms); retry shortly`,
      )
    }
    return this.table.entry(model)
  }
  /** Serialises operations on one model. */
  private queueOn<T>(entry: ModelEntry, operation: (entry: ModelEntry) => Promise<T>): Promise<T> {
    entry.operations++
    const run = entry.chain.then(() => operation(entry)).finally(() => entry.operations--)
    entry.chain = run.catch(() => undefined)
    return run
  }
  async load(model: string): Promise<void> {
    if (this.closed) throw modelNotReady(model, 'the server is shutting down')
    const repo = await readRepositoryModel(this.options.repositoryDir, model)
    if (!repo) {
      if (this.table.has(model)) await this.unload(model)
      throw modelNotFound(model)
    }
    const entry = this.table.get(model) ?? this.table.add(model)
    entry.notLoaded = undefined
    return this.queueOn(entry, (e) => this.reload(e))
  }
  /**
   * Loads the versions the policy wants from disk next to the ones serving: unchanged versions are
   * kept, new or changed ones are opened and warmed up, then the routing table is swapped in one
   * step and the versions it no longer holds drain and are disposed. A version that fails to load
   * leaves the one it would have replaced serving.
   */
  private async reload(entry: ModelEntry): Promise<void> {
    const repo = await readRepositoryModel(this.options.repositoryDir, entry.name)
    if (!repo) {
      // Removed between load() and its turn in the queue: nothing to load, nothing left to serve.
      await this.retire(entry, [...entry.versions.values()])
      entry.versions = new Map()
      throw modelNotFound(entry.name)
    }
    let config: ModelConfig
    try {
      config =
        repo.configText !== undefined
          ? parseModelConfig(repo.configText, `models/${entry.name}/config.yaml`)
          : {}
    } catch (err) {
      const reason = (err as Error).message
      entry.problem = reason
      for (const slot of entry.versions.values()) if (slot.state !== 'READY') slot.reason = reason
      if (this.table.readySlots(entry).length === 0) {
        entry.versions = new Map(
          repo.versions.map((v) => [
            String(v),
            { version: String(v), state: 'UNAVAILABLE' as const, reason },
          ]),
        )
      }
      throw modelLoadFailed(entry.name, [reason])
    }
    if (repo.versions.length === 0) {
      const reason = `no version directories in models/${entry.name}/ (expected models/${entry.name}/1/model.onnx)`
      entry.problem = reason
      await this.retire(entry, [...entry.versions.values()])
      entry.versions = new Map()
      throw modelLoadFailed(entry.name, [reason])
    }
    entry.problem = undefined
    const wanted = selectVersions(repo.versions, config).map(String)
    const failures: string[] = []
    const next = new Map<string, VersionSlot>()
    const missing = [
      ...('specific' in (config.version_policy ?? {})
        ? (config.version_policy as { specific: number[] }).specific
        : []),
      ...(config.traffic ?? []).filter((t) => t.weight > 0).map((t) => t.version),
      ...(config.shadow ? [config.shadow.version] : []),
    ]
      .map(String)
      .filter((v) => !repo.versions.map(String).includes(v))
    for (const version of new Set(missing)) {
      const reason = `version ${version} is named in config.yaml but models/${entry.name}/${version}/ does not exist`
      next.set(version, { version, state: 'UNAVAILABLE', reason })
      failures.push(reason)
    }
    const loads = await Promise.all(
      wanted.map(async (version) => {
        const file = await versionFile(repo, Number(version))
        const fingerprint = file?.fingerprint
        const current = entry.versions.get(version)
        if (current?.state === 'READY' && fingerprint !== undefined && current.fingerprint === fingerprint)
          return current
        if (current?.state !== 'READY') entry.loading.add(version)
        try {
          return await this.loadVersion(entry.name, repo, version, config, file)
        } finally {
          entry.loading.delete(version)
        }
      }),
    )
    for (const slot of loads) {
      const current = entry.versions.get(slot.version)
      if (slot.state !== 'READY') {
        failures.push(`version ${slot.version}: ${slot.reason}`)
        // The old instance of a version that failed to reload keeps serving.
        if (current?.state === 'READY') {
          next.set(slot.version, current)
          continue
        }
      }
      next.set(slot.version, slot)
    }
    if (failures.length > 0) {
      // A new version that failed must not take the old ones down with it: everything that was
      // serving keeps serving until a load succeeds.
      for (const slot of entry.versions.values())
        if (slot.state === 'READY' && !next.has(slot.version)) next.set(slot.version, slot)
    }
    const retired = [...entry.versions.values()].filter((s) => next.get(s.version) !== s)
    // The swap: one assignment, so every request sees either the old table or the new one.
    entry.versions = next
    for (const slot of loads) {
      this.reservedBytes -= slot.reservedBytes ?? 0
      slot.reservedBytes = undefined
    }
    entry.traffic = config.traffic?.map((t) => ({ version: String(t.version), weight: t.weight }))
    entry.shadow = config.shadow ? String(config.shadow.version) : undefined
    entry.stickyHeader = config.sticky_header
    for (const slot of next.values()) {
      if (slot.state === 'READY') {
        this.logger.info(
          {
            model: entry.name,
            version: slot.version,
            executionProvider: slot.serving?.description.executionProvider,
            device: slot.serving?.description.device,
          },
          `model ${entry.name} version ${slot.version} is ready`,
        )
      }
    }
    await this.retire(entry, retired)
    if (failures.length > 0) throw modelLoadFailed(entry.name, failures)
  }
  /**
   * Admits one version under the memory budget (unloading least recently used models to make
   * room), then opens it within the load concurrency; never throws: any failure (a bad file, no
   * memory, no thread) is an UNAVAILABLE slot with its reason.
   */
  private async loadVersion(
    name: string,
    repo: RepositoryModel,
    version: string,
    config: ModelConfig,
    file: { fingerprint: string; size: number } | undefined,
  ): Promise<VersionSlot> {
    const started = performance.now()
    const slot = await this.loadVersionTimed(name, repo, version, config, file)
    this.loadStats.record(
      name,
      (performance.now() - started) / 1000,
      slot.state === 'READY' ? undefined : (slot.reason ?? 'unknown'),
    )
    return slot
  }

  private async loadVersionTimed(
    name: string,
    repo: RepositoryModel,
    version: string,
    config: ModelConfig,
    file: { fingerprint: string; size: number } | undefined,
  ): Promise<VersionSlot> {
    const modelPath = modelFile(repo, Number(version))
    if (!file) return unavailable(version, `models/${name}/${version}/model.onnx is missing`)
    const { fingerprint, size } = file
    // Instances the config names; a second one opened under load is not counted.
    const bytes = this.options.memoryBudgetBytes ? estimateModelMemory(size, config.instances ?? 1) : 0
    const refusal = this.makeRoom(name, bytes)
    if (refusal) return this.failed(name, version, refusal, true)
    let slot: VersionSlot
    try {
      slot = await this.limiter.run(() => this.openVersion(name, modelPath, version, config, fingerprint))
    } catch (err) {
      slot = this.failed(name, version, firstLine((err as Error).message))
    }
    if (slot.state === 'READY') {
      slot.memoryBytes = bytes
      slot.reservedBytes = bytes
    } else this.reservedBytes -= bytes
    return slot
  }
  /** A version that could not load, logged with its reason. */
  private failed(name: string, version: string, reason: string, loadsOnRequest = false): VersionSlot {
    this.logger.error({ model: name, version, reason }, `model ${name}:${version} is unavailable`)
    return unavailable(version, reason, loadsOnRequest)
  }

  /** Estimated bytes of the versions holding a backend, and of loads admitted but not finished. */
  private usedBytes(): number {
    let used = this.reservedBytes
    for (const entry of this.table.entries())
      for (const slot of entry.versions.values()) if (slot.serving) used += slot.memoryBytes ?? 0
    return used
  }
  /** True when every version of the model holding a backend has nothing queued or running. */
  private idle(entry: ModelEntry): boolean {
    let loaded = false
    for (const slot of entry.versions.values()) {
      if (!slot.serving) continue
      loaded = true
      const stats = slot.serving.scheduler.stats()
      if (stats.queueDepth + stats.inFlightBatches > 0) return false
    }
    return loaded
  }
  /**
   * Reserves `bytes` under models.memory_budget for a load of `model`, first unloading the least
   * recently used models that are idle (nothing queued or running, no load or unload under way);
   * the reason it cannot, when the rest is held by models in use.
   */
  private makeRoom(model: string, bytes: number): string | undefined {
    const budget = this.options.memoryBudgetBytes
    if (!budget) return undefined
    let used = this.usedBytes()
    if (used + bytes > budget) {
      const candidates = [...this.table.entries()]
        .filter((e) => e.name !== model && e.operations === 0 && !this.onDemand.has(e.name) && this.idle(e))
        .sort((a, b) => a.lastUsed - b.lastUsed)
      for (const entry of candidates) {
        if (used + bytes <= budget) break
        used -= this.evict(entry)
      }
    }
    if (used + bytes > budget) {
      return `models.memory_budget (${MiB(budget)}) cannot hold it: it needs ~${MiB(bytes)} and the ${MiB(used)} in use are held by models loading or serving requests`
    }
    this.reservedBytes += bytes
    return undefined
  }
  /**
   * Unloads an idle model to make room: its ready versions leave the routing table in one step
   * (their next request loads them again) and are disposed; returns the estimated bytes freed.
   */
  private evict(entry: ModelEntry): number {
    const old = [...entry.versions.values()].filter((s) => s.serving)
    const freed = old.reduce((n, s) => n + (s.memoryBytes ?? 0), 0)
    const next = new Map(entry.versions)
    for (const slot of old) next.set(slot.version, unavailable(slot.version, EVICTED, true))
    entry.versions = next
    this.logger.info(
      { model: entry.name, freed: MiB(freed) },
      `model ${entry.name} unloaded (least recently used) to stay within models.memory_budget`,
    )
    void this.retire(entry, old)
    return freed
  }
  /** Opens, checks and warms up one version; a failure is an UNAVAILABLE slot. */
  private async openVersion(
    name: string,
    modelPath: string,
    version: string,
    config: ModelConfig,
    fingerprint: string | undefined,
  ): Promise<VersionSlot> {
    const label = `${name}:${version}`
    const format = formatOf(modelPath)
    const factory = format && (this.options.backends?.[format] ?? BACKENDS[format])
    if (!factory) return unavailable(version, `no backend serves ${modelPath}`)
    const backend: Backend = factory({
      modelPath,
      config,
      onUnavailable: (reason) => this.instanceFailed(name, version, backend, reason),
      defaultDevice: this.options.defaultDevice ?? 'auto',
      ...(this.options.workerThreads !== undefined ? { workerThreads: this.options.workerThreads } : {}),
      ...(this.options.workerPool ? { workerPool: this.options.workerPool } : {}),
      ...(this.options.isolation ? { isolation: this.options.isolation } : {}),
      label,
      logger: this.logger,
      ...(this.options.pytorch ? { pytorch: this.options.pytorch } : {}),
      discoverGpus: () => this.gpuSnapshot(),
      reservations: this.reservations,
    })
    try {
      await backend.load()
    } catch (err) {
      return this.failed(
        name,
        version,
        err instanceof BackendLoadError ? err.reason : firstLine((err as Error).message),
      )
    }
    const fail = async (reason: string): Promise<VersionSlot> => {
      await backend.dispose()
      return this.failed(name, version, reason)
    }
    const description = backend.describe()
    const batchable = hasBatchDimension(description)
    if ((config.max_batch_size ?? 0) > 1 && !batchable) {
      const offender = [...description.inputs, ...description.outputs].find((s) => s.shape[0] !== -1)
      return fail(
        `max_batch_size ${config.max_batch_size} needs a dynamic first dimension on every input and output, but '${offender?.name}' has shape [${offender?.shape.join(',')}]`,
      )
    }
    const maxBatchSize = batchable ? (config.max_batch_size ?? DEFAULT_MAX_BATCH_SIZE) : 0
    try {
      const samples = warmupRequests(description.inputs, config)
      // One pass per instance so every open session has run before traffic arrives (an instance
      // opened later under load runs its first batch cold).
      for (const sample of samples)
        await Promise.all(Array.from({ length: description.instances }, () => backend.run(sample)))
    } catch (err) {
      const reason = `warmup failed: ${firstLine((err as Error).message)}`
      if (config.warmup) return fail(reason)
      // Zeros are only a guess at a valid input; a model that rejects them can still serve.
      this.logger.warn(
        { model: name, version, reason },
        `default warmup of ${label} failed; serving without it`,
      )
    }
    const scheduler = new Scheduler({
      model: `${name}' version '${version}`,
      maxBatchSize,
      maxQueueDelayMs: config.max_queue_delay_ms ?? DEFAULT_MAX_QUEUE_DELAY_MS,
      preferredBatchSizes: config.preferred_batch_sizes,
      maxQueueSize: config.queue?.max_size ?? DEFAULT_QUEUE_SIZE,
      defaultTimeoutMs: config.queue?.timeout_ms,
      concurrency: description.instances,
      queueAhead: description.computesOffEventLoop === true,
      execute: (inputs, outputs) => backend.run(inputs, outputs),
    })
    return {
      version,
      state: 'READY',
      serving: {
        backend,
        scheduler,
        description,
        batching: { batchable, maxBatchSize },
        ...(config.cache?.enabled
          ? { cache: new ResponseCache(config.cache.max_entries ?? DEFAULT_CACHE_ENTRIES) }
          : {}),
      },
      fingerprint,
    }
  }
  /**
   * nvidia-smi once for a burst of loads (a startup with many models, a reload of many versions)
   * instead of once per version; memory figures older than a few seconds are asked for again.
   */
  private gpuSnapshot(): Promise<GpuDiscovery> {
    const now = Date.now()
    if (!this.gpus || now - this.gpus.at > GPU_SNAPSHOT_TTL_MS) {
      this.gpus = { at: now, discovery: (this.options.gpuDiscovery ?? (() => discoverGpus()))() }
    }
    return this.gpus.discovery
  }
  /**
   * A loaded version whose backend gave up (its instances kept losing their worker threads): it
   * leaves the routing table as UNAVAILABLE with the reason, counts as a failed load (reason
   * crashed), and is drained and disposed; `helix models load` or the load API loads it again.
   */
  private instanceFailed(name: string, version: string, backend: Backend, reason: string): void {
    const entry = this.table.get(name)
    if (!entry) return
    // Queued behind the load that opened the backend, when it gave up during its warmup.
    void this.queueOn(entry, async () => {
      const slot = entry.versions.get(version)
      // Replaced or unloaded meanwhile: nothing of this backend is serving any more.
      if (slot?.state !== 'READY' || slot.serving?.backend !== backend) return
      this.loadStats.fail(name, reason)
      const next = new Map(entry.versions)
      next.set(version, unavailable(version, reason))
      entry.versions = next
      this.logger.error({ model: name, version, reason }, `model ${name}:${version} is unavailable`)
      await this.retire(entry, [slot])
    }).catch(() => undefined)
  }

  /** Lets versions that left the routing table finish their queued work, then frees them. */
  private async retire(entry: ModelEntry, slots: VersionSlot[]): Promise<void> {
    const timeoutMs = this.options.drainTimeoutMs ?? 30_000
    await Promise.all(
      slots.map(async (slot) => {
        const { serving } = slot
        if (!serving) return
        slot.state = 'UNLOADING'
        if (!(await settlesWithin(serving.scheduler.drain(), timeoutMs))) {
          this.logger.warn(
            { model: entry.name, version: slot.version },
            `version ${slot.version} did not drain within ${timeoutMs} ms`,
          )
          serving.scheduler.abort('it was unloaded')
          // Batches already running still hold their session: let them finish before disposing.
          await serving.scheduler.drain()
        }
        await serving.backend.dispose()
        slot.state = 'UNAVAILABLE'
        slot.reason = 'unloaded'
        slot.serving = undefined
        this.logger.info(
          { model: entry.name, version: slot.version },
          `model ${entry.name} version ${slot.version} unloaded`,
        )
      }),
    )
  }
  async unload(model: string): Promise<void> {
    return this.queueOn(this.table.entry(model), async (entry) => {
      const slots = [...entry.versions.values()]
      // Out of the routing table first, so nothing new arrives while they drain; the rows stay in
      // the index as UNAVAILABLE "unloaded".
      for (const slot of slots) if (slot.state === 'READY') slot.state = 'UNLOADING'
      await this.retire(entry, slots)
      for (const slot of slots) {
        slot.state = 'UNAVAILABLE'
        slot.reason = 'unloaded'
        slot.serving = undefined
      }
    })
  }
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.startup.catch(() => undefined)
    await Promise.all(this.table.names().map((name) => this.unload(name).catch(() => undefined)))
  }
}

/** Whether `work` settles within `ms`; it goes on either way, and its rejection is passed on. */
async function settlesWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms)
  })
  try {
    return await Promise.race([work.then(() => true), timedOut])
  } finally {
    clearTimeout(timer)
  }
}
