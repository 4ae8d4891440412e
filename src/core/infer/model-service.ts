import { stat } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { firstLine } from '../../shared/errors.js'
import type { Backend, BackendDescription, DevicePolicy } from '../backends/backend.js'
import { BackendLoadError, OnnxBackend, type OnnxBackendOptions } from '../backends/onnx-backend.js'
import type { WorkerPool } from '../backends/worker-pool.js'
import { discoverGpus, type GpuDiscovery } from '../gpu/nvidia-smi.js'
import { GpuReservations } from '../gpu/placement.js'
import { type CoreLogger, silentLogger } from '../logger.js'
import { modelLoadFailed, modelNotFound, modelNotReady, versionNotFound } from './errors.js'
import { type BatchingShape, hasBatchDimension, prepareRequest } from './input-validation.js'
import { LoadLimiter } from './load-limiter.js'
import { estimateModelMemory, MiB } from './memory-budget.js'
import { type ModelConfig, parseModelConfig } from './model-config.js'
import {
  modelFile,
  type RepositoryModel,
  readRepositoryModel,
  scanRepository,
  versionFingerprint,
} from './repository.js'
import { ResponseCache } from './response-cache.js'
import { Scheduler } from './scheduler.js'
import { pickVersion, type TrafficShare } from './traffic.js'
import type {
  InferRequest,
  InferResult,
  ModelIndexEntry,
  ModelMetadata,
  ModelService,
  ModelState,
  Tensor,
} from './types.js'
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

export interface ModelServiceOptions {
  /** The model repository: <dir>/<name>/<version>/model.onnx (+ <name>/config.yaml). */
  repositoryDir: string
  /** Device policy for models whose config names none (helix.yaml models.device). */
  defaultDevice?: DevicePolicy
  logger?: CoreLogger
  /** GPU discovery; nvidia-smi by default. Runs once per load of a model. */
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
  /** Builds a backend for a version; ONNX Runtime by default (a seam for other runtimes). */
  createBackend?: (options: OnnxBackendOptions) => Backend
}

interface VersionSlot {
  version: string
  state: ModelState
  reason?: string
  backend?: Backend
  scheduler?: Scheduler
  description?: BackendDescription
  batching?: BatchingShape
  fingerprint?: string
  cache?: ResponseCache
  /** Estimated resident bytes, counted against the memory budget while the slot holds a backend. */
  memoryBytes?: number
  /** The budget reservation of a version just loaded, released once it is in the routing table. */
  reservedBytes?: number
  /** Unloaded or refused by the memory budget: its next request loads it (again). */
  loadsOnRequest?: boolean
}

interface ModelEntry {
  name: string
  /** The routing table: what infer() sees. Replaced as a whole on (re)load. */
  versions: Map<string, VersionSlot>
  /** Versions being loaded for the first time (shown as LOADING, not yet routable). */
  loading: Set<string>
  traffic?: TrafficShare[]
  shadow?: string
  stickyHeader?: string
  /** Why the model as a whole cannot load (bad config.yaml, no versions). */
  problem?: string
  /** Set while the model was never loaded (models.load none or lazy): the index shows it. */
  notLoaded?: string
  /** Serialises load/unload of one model. */
  chain: Promise<unknown>
  /** Operations queued or running on the chain; the LRU never unloads a model that has some. */
  operations: number
  /** Tick of the last request, for the least-recently-used order. */
  lastUsed: number
}

const byVersion = (a: string, b: string) => Number(a) - Number(b)

/**
 * The inference core behind the daemon's routes: a Triton-style model repository with one
 * scheduler per loaded version, version policies, A/B traffic, shadowing, zero-downtime reload and
 * an optional response cache.
 */
export class HelixModelService implements ModelService {
  private readonly models = new Map<string, ModelEntry>()
  private readonly logger: CoreLogger
  private readonly reservations = new GpuReservations()
  private gpus?: { at: number; discovery: Promise<GpuDiscovery> }
  private startup: Promise<void> = Promise.resolve()
  private started = false
  private closed = false
  private readonly limiter: LoadLimiter
  /** Loads on demand in progress, by model: concurrent first requests share one. */
  private readonly onDemand = new Map<string, Promise<void>>()
  /** Estimated bytes of loads admitted under the memory budget and not finished yet. */
  private reservedBytes = 0
  private clock = 0

  constructor(private readonly options: ModelServiceOptions) {
    this.logger = options.logger ?? silentLogger
    this.limiter = new LoadLimiter(Math.max(1, options.loadConcurrency || defaultLoadConcurrency()))
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
        if (!names.includes(model.name)) this.newEntry(model.name).notLoaded = notLoaded
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

  isReady(): boolean {
    if (!this.started || this.closed) return false
    // A load on demand is one request's wait, not the server's: it stays ready meanwhile.
    for (const entry of this.models.values())
      if (entry.loading.size > 0 && !this.onDemand.has(entry.name)) return false
    return true
  }

  private newEntry(model: string): ModelEntry {
    const entry: ModelEntry = {
      name: model,
      versions: new Map(),
      loading: new Set(),
      chain: Promise.resolve(),
      operations: 0,
      lastUsed: 0,
    }
    this.models.set(model, entry)
    return entry
  }

  private entry(model: string): ModelEntry {
    const entry = this.models.get(model)
    if (!entry) throw modelNotFound(model)
    return entry
  }

  private slot(entry: ModelEntry, version: string): VersionSlot {
    const slot = entry.versions.get(version)
    if (!slot) {
      if (entry.loading.has(version))
        throw modelNotReady(`${entry.name}' version '${version}`, 'it is loading')
      throw versionNotFound(entry.name, version, [...entry.versions.keys()].sort(byVersion))
    }
    return slot
  }

  private readySlots(entry: ModelEntry): VersionSlot[] {
    return [...entry.versions.values()]
      .filter((s) => s.state === 'READY')
      .sort((a, b) => byVersion(b.version, a.version))
  }

  /** The version unversioned calls go to by default: the newest ready one that is not the shadow. */
  private defaultSlot(entry: ModelEntry): VersionSlot {
    const ready = this.readySlots(entry)
    const chosen = ready.find((s) => s.version !== entry.shadow) ?? ready[0]
    if (!chosen) throw modelNotReady(entry.name, this.notReadyReason(entry))
    return chosen
  }

  private notReadyReason(entry: ModelEntry): string {
    if (entry.loading.size > 0) return 'it is loading'
    const reasons = [...entry.versions.values()]
      .filter((s) => s.reason)
      .map((s) => `version ${s.version}: ${s.reason}`)
    return entry.problem ?? (reasons.join('; ') || entry.notLoaded || 'no version is loaded')
  }

  metadata(model: string, version?: string): ModelMetadata {
    const entry = this.entry(model)
    const slot = version !== undefined ? this.slot(entry, version) : this.defaultSlot(entry)
    if (slot.state !== 'READY' || !slot.description) {
      throw modelNotReady(`${model}' version '${slot.version}`, slot.reason ?? slot.state.toLowerCase())
    }
    return {
      name: model,
      versions: this.readySlots(entry)
        .map((s) => s.version)
        .sort(byVersion),
      platform: 'onnxruntime_onnx',
      inputs: slot.description.inputs,
      outputs: slot.description.outputs,
      executionProvider: slot.description.executionProvider,
      device: slot.description.device,
      maxBatchSize: slot.batching?.batchable ? (slot.batching.maxBatchSize ?? 0) : 0,
    }
  }

  modelReady(model: string, version?: string): boolean {
    const entry = this.entry(model)
    if (version !== undefined) return this.slot(entry, version).state === 'READY'
    return this.readySlots(entry).length > 0
  }

  index(options: { readyOnly?: boolean } = {}): ModelIndexEntry[] {
    const rows: ModelIndexEntry[] = []
    for (const entry of [...this.models.values()].sort((a, b) => a.name.localeCompare(b.name))) {
      const versions = new Set([...entry.versions.keys(), ...entry.loading])
      if (versions.size === 0) {
        rows.push({
          name: entry.name,
          version: '',
          state: 'UNAVAILABLE',
          reason: entry.problem ?? entry.notLoaded ?? 'no version is loaded',
        })
      }
      for (const version of [...versions].sort(byVersion)) {
        const slot = entry.versions.get(version)
        // A version being (re)loaded after a failure shows as LOADING, not as its old failure.
        if (!slot || (entry.loading.has(version) && slot.state === 'UNAVAILABLE')) {
          rows.push({ name: entry.name, version, state: 'LOADING' })
          continue
        }
        const d = slot.description
        rows.push({
          name: entry.name,
          version,
          state: slot.state,
          ...(slot.reason ? { reason: slot.reason } : {}),
          ...(d && slot.state !== 'UNAVAILABLE'
            ? {
                executionProvider: d.executionProvider,
                device: d.device,
                queueDepth: slot.scheduler?.queueDepth ?? 0,
                ...(slot.scheduler ? { queueCapacity: slot.scheduler.queueCapacity } : {}),
              }
            : {}),
          ...(d?.fallbackReason && slot.state !== 'UNAVAILABLE' ? { fallbackReason: d.fallbackReason } : {}),
        })
      }
    }
    return options.readyOnly ? rows.filter((r) => r.state === 'READY') : rows
  }

  /**
   * Whether a request for this model loads it first: never loaded under models.load lazy, or
   * unloaded or refused by the memory budget (in any mode); a load on demand already running is
   * shared. A model that failed for another reason waits for an explicit load.
   */
  private loadsOnDemand(entry: ModelEntry | undefined): boolean {
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
  private async loadOnDemand(model: string): Promise<ModelEntry> {
    let pending = this.onDemand.get(model)
    if (!pending) {
      pending = this.load(model)
        .catch(() => undefined)
        .finally(() => this.onDemand.delete(model))
      this.onDemand.set(model, pending)
    }
    const timeoutMs = this.options.lazyLoadTimeoutMs ?? DEFAULT_LAZY_LOAD_TIMEOUT_MS
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs)
    })
    const outcome = await Promise.race([pending, timedOut])
    clearTimeout(timer)
    if (outcome === 'timeout') {
      throw modelNotReady(
        model,
        `it is still loading after ${timeoutMs} ms (models.lazy_load_timeout_ms); retry shortly`,
      )
    }
    return this.entry(model)
  }

  async infer(request: InferRequest): Promise<InferResult> {
    let entry = this.models.get(request.model)
    if (this.loadsOnDemand(entry)) entry = await this.loadOnDemand(request.model)
    if (!entry) throw modelNotFound(request.model)
    entry.lastUsed = ++this.clock
    let slot: VersionSlot
    if (request.version !== undefined) {
      slot = this.slot(entry, request.version)
    } else if (entry.traffic) {
      const ready = new Set(this.readySlots(entry).map((s) => s.version))
      const header = entry.stickyHeader ? request.headers?.[entry.stickyHeader.toLowerCase()] : undefined
      const key = (Array.isArray(header) ? header[0] : header) ?? request.routingKey
      const picked = pickVersion(entry.traffic, ready, key)
      slot = picked ? this.slot(entry, picked) : this.defaultSlot(entry)
    } else {
      slot = this.defaultSlot(entry)
    }
    if (slot.state !== 'READY' || !slot.scheduler || !slot.description || !slot.batching) {
      throw modelNotReady(`${entry.name}' version '${slot.version}`, slot.reason ?? slot.state.toLowerCase())
    }
    const prepared = prepareRequest(entry.name, slot.description, request, slot.batching)
    const cacheKey = slot.cache
      ? ResponseCache.key(slot.version, prepared.inputs, prepared.outputs)
      : undefined
    const hit = cacheKey ? slot.cache?.get(cacheKey) : undefined
    if (hit) {
      return {
        modelName: entry.name,
        modelVersion: slot.version,
        ...(request.id !== undefined ? { id: request.id } : {}),
        outputs: hit,
        timing: { queueMs: 0, computeMs: 0, batchSize: 0 },
        cached: true,
      }
    }
    // Routing, validation and enqueueing happen in one synchronous stretch, so a reload that swaps
    // the routing table can never leave a request between an old table and a draining scheduler.
    const pending = slot.scheduler.enqueue(prepared, { signal: request.signal, timeoutMs: request.timeoutMs })
    const shadowed = request.version === undefined && this.shadowCopy(entry, slot.version, request)
    const result = await pending
    const outputs = orderOutputs(result.outputs, prepared.outputs)
    if (cacheKey) slot.cache?.set(cacheKey, outputs)
    return {
      modelName: entry.name,
      modelVersion: slot.version,
      ...(request.id !== undefined ? { id: request.id } : {}),
      outputs,
      timing: result.timing,
      ...(shadowed ? { inputsRetained: true } : {}),
    }
  }

  /**
   * Sends a copy to the shadow version; its answer and its errors are only logged. True when the
   * copy was queued: it still reads the request's input memory after the answer.
   */
  private shadowCopy(entry: ModelEntry, answered: string, request: InferRequest): boolean {
    const shadow = entry.shadow ? entry.versions.get(entry.shadow) : undefined
    if (
      !shadow ||
      shadow.version === answered ||
      shadow.state !== 'READY' ||
      !shadow.scheduler ||
      !shadow.description ||
      !shadow.batching
    )
      return false
    try {
      const prepared = prepareRequest(entry.name, shadow.description, request, shadow.batching)
      shadow.scheduler
        .enqueue(prepared, { timeoutMs: request.timeoutMs })
        .then((r) =>
          this.logger.debug(
            { model: entry.name, version: shadow.version, timing: r.timing },
            'shadow answered',
          ),
        )
        .catch((err: Error) =>
          this.logger.debug(
            { model: entry.name, version: shadow.version, err: err.message },
            'shadow failed',
          ),
        )
      return true
    } catch (err) {
      this.logger.debug(
        { model: entry.name, version: shadow.version, err: (err as Error).message },
        'shadow refused the input',
      )
      return false
    }
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
      if (this.models.has(model)) await this.unload(model)
      throw modelNotFound(model)
    }
    const entry = this.models.get(model) ?? this.newEntry(model)
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
      if (this.readySlots(entry).length === 0) {
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
        const fingerprint = await versionFingerprint(repo, Number(version))
        const current = entry.versions.get(version)
        if (current?.state === 'READY' && fingerprint !== undefined && current.fingerprint === fingerprint)
          return current
        if (current?.state !== 'READY') entry.loading.add(version)
        try {
          return await this.loadVersion(entry.name, repo, version, config, fingerprint)
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
            executionProvider: slot.description?.executionProvider,
            device: slot.description?.device,
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
    fingerprint?: string,
  ): Promise<VersionSlot> {
    const modelPath = modelFile(repo, Number(version))
    const size =
      fingerprint === undefined
        ? undefined
        : await stat(modelPath).then(
            (s) => s.size,
            () => undefined,
          )
    if (size === undefined) {
      return { version, state: 'UNAVAILABLE', reason: `models/${name}/${version}/model.onnx is missing` }
    }
    const label = `${name}:${version}`
    // Instances the config names; a second one opened under load is not counted.
    const bytes = this.options.memoryBudgetBytes ? estimateModelMemory(size, config.instances ?? 1) : 0
    const refusal = this.makeRoom(name, bytes)
    if (refusal) {
      this.logger.error({ model: name, version, reason: refusal }, `model ${label} is unavailable`)
      return { version, state: 'UNAVAILABLE', reason: refusal, loadsOnRequest: true }
    }
    let slot: VersionSlot
    try {
      slot = await this.limiter.run(() => this.openVersion(name, modelPath, version, config, fingerprint))
    } catch (err) {
      const reason = firstLine((err as Error).message)
      this.logger.error({ model: name, version, reason }, `model ${label} is unavailable`)
      slot = { version, state: 'UNAVAILABLE', reason }
    }
    if (slot.state === 'READY') {
      slot.memoryBytes = bytes
      slot.reservedBytes = bytes
    } else this.reservedBytes -= bytes
    return slot
  }

  /** Estimated bytes of the versions holding a backend, and of loads admitted but not finished. */
  private usedBytes(): number {
    let used = this.reservedBytes
    for (const entry of this.models.values())
      for (const slot of entry.versions.values()) if (slot.backend) used += slot.memoryBytes ?? 0
    return used
  }

  /** True when every version of the model holding a backend has nothing queued or running. */
  private idle(entry: ModelEntry): boolean {
    let loaded = false
    for (const slot of entry.versions.values()) {
      if (!slot.backend) continue
      loaded = true
      const stats = slot.scheduler?.stats()
      if (stats && stats.queueDepth + stats.inFlightBatches > 0) return false
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
      const candidates = [...this.models.values()]
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
    const old = [...entry.versions.values()].filter((s) => s.backend)
    const freed = old.reduce((n, s) => n + (s.memoryBytes ?? 0), 0)
    const next = new Map(entry.versions)
    for (const slot of old)
      next.set(slot.version, {
        version: slot.version,
        state: 'UNAVAILABLE',
        reason: EVICTED,
        loadsOnRequest: true,
      })
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
    const backendOptions: OnnxBackendOptions = {
      modelPath,
      device: config.device ?? this.options.defaultDevice ?? 'auto',
      gpu: config.gpu,
      memoryBudgetMiB: config.memory_budget_mb,
      // Undefined leaves it to the backend: two worker-thread sessions on the CPU, one on a GPU.
      instances: config.instances,
      intraOpThreads: config.intra_op_threads,
      interOpThreads: config.inter_op_threads,
      // Undefined leaves it to the backend: worker threads for the CPU provider.
      workerThreads: config.worker_threads ?? this.options.workerThreads,
      allowSpinning: config.allow_spinning,
      label,
      logger: this.logger,
      discoverGpus: () => this.gpuSnapshot(),
      reservations: this.reservations,
      ...(this.options.workerPool ? { pool: this.options.workerPool } : {}),
    }
    const backend = (this.options.createBackend ?? ((o) => new OnnxBackend(o)))(backendOptions)
    try {
      await backend.load()
    } catch (err) {
      const reason = err instanceof BackendLoadError ? err.reason : firstLine((err as Error).message)
      this.logger.error({ model: name, version, reason }, `model ${label} is unavailable`)
      return { version, state: 'UNAVAILABLE', reason }
    }
    const fail = async (reason: string): Promise<VersionSlot> => {
      await backend.dispose()
      this.logger.error({ model: name, version, reason }, `model ${label} is unavailable`)
      return { version, state: 'UNAVAILABLE', reason }
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
      queueAhead: description.workerThreads === true,
      execute: (inputs, outputs) => backend.run(inputs, outputs),
    })
    return {
      version,
      state: 'READY',
      backend,
      scheduler,
      description,
      batching: { batchable, maxBatchSize },
      fingerprint,
      ...(config.cache?.enabled
        ? { cache: new ResponseCache(config.cache.max_entries ?? DEFAULT_CACHE_ENTRIES) }
        : {}),
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

  /** Lets versions that left the routing table finish their queued work, then frees them. */
  private async retire(entry: ModelEntry, slots: VersionSlot[]): Promise<void> {
    const timeoutMs = this.options.drainTimeoutMs ?? 30_000
    await Promise.all(
      slots.map(async (slot) => {
        if (!slot.scheduler) return slot.backend?.dispose()
        slot.state = 'UNLOADING'
        let timer: NodeJS.Timeout | undefined
        const timedOut = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), timeoutMs)
        })
        const outcome = await Promise.race([slot.scheduler.drain(), timedOut])
        clearTimeout(timer)
        if (outcome === 'timeout') {
          this.logger.warn(
            { model: entry.name, version: slot.version },
            `version ${slot.version} did not drain within ${timeoutMs} ms`,
          )
          slot.scheduler.abort('it was unloaded')
          // Batches already running still hold their session: let them finish before disposing.
          await slot.scheduler.drain()
        }
        await slot.backend?.dispose()
        slot.state = 'UNAVAILABLE'
        slot.reason = 'unloaded'
        this.logger.info(
          { model: entry.name, version: slot.version },
          `model ${entry.name} version ${slot.version} unloaded`,
        )
      }),
    )
  }

  async unload(model: string): Promise<void> {
    return this.queueOn(this.entry(model), async (entry) => {
      const slots = [...entry.versions.values()]
      // Out of the routing table first, so nothing new arrives while they drain; the rows stay in
      // the index as UNAVAILABLE "unloaded".
      for (const slot of slots) if (slot.state === 'READY') slot.state = 'UNLOADING'
      await this.retire(entry, slots)
      for (const slot of slots) {
        slot.state = 'UNAVAILABLE'
        slot.reason = 'unloaded'
        slot.backend = undefined
        slot.scheduler = undefined
        slot.cache = undefined
      }
    })
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.startup.catch(() => undefined)
    await Promise.all([...this.models.keys()].map((name) => this.unload(name).catch(() => undefined)))
  }
}

/** Outputs in the order the request named them (the model's order when it named none). */
function orderOutputs(outputs: Tensor[], wanted?: string[]): Tensor[] {
  if (!wanted) return outputs
  return wanted
    .map((name) => outputs.find((t) => t.name === name))
    .filter((t): t is Tensor => t !== undefined)
}

/** Creates the inference core and loads the startup models (bad ones become UNAVAILABLE). */
export async function createModelService(options: ModelServiceOptions): Promise<HelixModelService> {
  const service = new HelixModelService(options)
  await service.start()
  return service
}
