import { type CoreLogger, silentLogger } from '../logger.js'
import { modelNotFound, wrongTask } from './errors.js'
import { prepareRequest } from './input-validation.js'
import type { ModelLoadStats } from './load-stats.js'
import { type LifecycleOptions, ModelLifecycle } from './model-lifecycle.js'
import { byVersion, ModelTable } from './model-table.js'
import { ResponseCache } from './response-cache.js'
import { routeRequest, shadowCopy } from './router.js'
import type {
  InferRequest,
  InferResult,
  ModelIndexEntry,
  ModelMetadata,
  ModelService,
  Readiness,
  TextTarget,
  TextTargetRequest,
} from './types.js'

export interface ModelServiceOptions extends LifecycleOptions {
  logger?: CoreLogger
}

/**
 * The inference core behind every protocol, split the way Triton splits it: the model table (what
 * the repository holds and in which state, model-table.ts), the lifecycle (loading, reloading,
 * unloading, the memory budget, model-lifecycle.ts), the router (versions, A/B traffic, shadow copies,
 * router.ts) and one scheduler per loaded version (scheduler.ts). This class only ties them together.
 */
export class HelixModelService implements ModelService {
  private readonly table = new ModelTable()
  private readonly lifecycle: ModelLifecycle
  private readonly logger: CoreLogger
  private clock = 0
  private draining = false

  constructor(options: ModelServiceOptions) {
    this.logger = options.logger ?? silentLogger
    this.lifecycle = new ModelLifecycle(this.table, options, this.logger)
  }

  /** Loads the startup models (helix.yaml models.load); a model that fails is only marked UNAVAILABLE. */
  start(): Promise<void> {
    return this.lifecycle.start()
  }

  isReady(): boolean {
    return this.readiness().ready
  }

  readiness(): Readiness {
    if (this.lifecycle.closed) return { ready: false, reason: 'stopped: the models are unloaded' }
    if (this.draining) return { ready: false, reason: 'draining: the daemon is shutting down' }
    if (!this.lifecycle.started) return { ready: false, reason: 'starting: loading the startup models' }
    // A load on demand is one request's wait, not the server's: it stays ready meanwhile.
    for (const entry of this.table.entries()) {
      if (entry.loading.size > 0 && !this.lifecycle.loadingOnDemand(entry.name)) {
        return {
          ready: false,
          reason: `loading model '${entry.name}' (version ${[...entry.loading].join(', ')})`,
        }
      }
    }
    return { ready: true }
  }

  beginDrain(): void {
    this.draining = true
  }

  metadata(model: string, version?: string): ModelMetadata {
    const entry = this.table.entry(model)
    const slot = this.table.ready(
      entry,
      version !== undefined ? this.table.slot(entry, version) : this.table.defaultSlot(entry),
    )
    const { description, batching } = slot.serving
    return {
      name: model,
      versions: this.table
        .readySlots(entry)
        .map((s) => s.version)
        .sort(byVersion),
      platform: description.platform ?? 'onnxruntime_onnx',
      inputs: description.inputs,
      outputs: description.outputs,
      executionProvider: description.executionProvider,
      device: description.device,
      maxBatchSize: batching.batchable ? (batching.maxBatchSize ?? 0) : 0,
    }
  }

  modelReady(model: string, version?: string): boolean {
    const entry = this.table.entry(model)
    if (version !== undefined) return this.table.slot(entry, version).state === 'READY'
    return this.table.readySlots(entry).length > 0
  }

  index(options: { readyOnly?: boolean } = {}): ModelIndexEntry[] {
    return this.table.index(options)
  }

  async infer(request: InferRequest): Promise<InferResult> {
    let entry = this.table.get(request.model)
    if (this.lifecycle.loadsOnDemand(entry)) entry = await this.lifecycle.loadOnDemand(request.model)
    if (!entry) throw modelNotFound(request.model)
    entry.lastUsed = ++this.clock
    const slot = routeRequest(this.table, entry, request)
    const { scheduler, description, batching, cache } = slot.serving
    const prepared = prepareRequest(entry.name, description, request, batching)
    const answer = (outputs: InferResult['outputs'], timing: InferResult['timing'], cached?: true) => ({
      modelName: entry.name,
      modelVersion: slot.version,
      ...(request.id !== undefined ? { id: request.id } : {}),
      outputs,
      timing,
      ...(cached ? { cached } : {}),
    })
    const cacheKey = cache ? ResponseCache.key(slot.version, prepared.inputs, prepared.outputs) : undefined
    const hit = cacheKey ? cache?.get(cacheKey) : undefined
    if (hit) {
      request.releaseInputs?.()
      return answer(hit, { queueMs: 0, computeMs: 0, batchSize: 0 }, true)
    }
    // Routing, validation and enqueueing happen in one synchronous stretch, so a reload that swaps
    // the routing table can never leave a request between an old table and a draining scheduler.
    const pending = scheduler.enqueue(prepared, {
      signal: request.signal,
      timeoutMs: request.timeoutMs,
      ...(request.traceContext ? { trace: request.traceContext } : {}),
    })
    const shadow =
      request.version === undefined ? shadowCopy(entry, slot.version, request, this.logger) : undefined
    const result = await pending
    if (cacheKey) cache?.set(cacheKey, result.outputs)
    // The inputs were copied into the batch (or the worker's buffer) when it ran; only a shadow
    // copy may still read them.
    if (request.releaseInputs) {
      if (shadow) void shadow.then(request.releaseInputs)
      else request.releaseInputs()
    }
    return answer(result.outputs, result.timing)
  }

  async text(request: TextTargetRequest): Promise<TextTarget> {
    let entry = this.table.get(request.model)
    if (this.lifecycle.loadsOnDemand(entry)) entry = await this.lifecycle.loadOnDemand(request.model)
    if (!entry) throw modelNotFound(request.model)
    entry.lastUsed = ++this.clock
    const slot = routeRequest(this.table, entry, { ...request, inputs: [] })
    const engine = slot.serving.backend.text
    if (!engine) throw wrongTask(entry.name, 'a tensor model', request.task)
    if (request.task && engine.info.task !== request.task)
      throw wrongTask(entry.name, engine.info.task, request.task)
    return { modelName: entry.name, modelVersion: slot.version, engine }
  }

  loadStats(): ModelLoadStats[] {
    return this.lifecycle.loadStats.list()
  }

  textModels(): TextTarget[] {
    const targets: TextTarget[] = []
    for (const entry of this.table.entries())
      for (const slot of this.table.readySlots(entry)) {
        const engine = slot.serving.backend.text
        if (engine) targets.push({ modelName: entry.name, modelVersion: slot.version, engine })
      }
    return targets
  }

  load(model: string): Promise<void> {
    return this.lifecycle.load(model)
  }

  unload(model: string): Promise<void> {
    return this.lifecycle.unload(model)
  }

  close(): Promise<void> {
    return this.lifecycle.close()
  }
}

/** Creates the inference core and loads the startup models (bad ones become UNAVAILABLE). */
export async function createModelService(options: ModelServiceOptions): Promise<HelixModelService> {
  const service = new HelixModelService(options)
  await service.start()
  return service
}
