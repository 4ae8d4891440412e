import type { Backend, BackendDescription } from '../backends/backend.js'
import { modelNotFound, modelNotReady, versionNotFound } from './errors.js'
import type { BatchingShape } from './input-validation.js'
import type { ResponseCache } from './response-cache.js'
import type { Scheduler } from './scheduler.js'
import type { TrafficShare } from './traffic.js'
import type { ModelIndexEntry, ModelState } from './types.js'

/** What a loaded version serves with; a version has all of it or none of it. */
export interface Serving {
  backend: Backend
  scheduler: Scheduler
  description: BackendDescription
  batching: BatchingShape
  cache?: ResponseCache
}

/** One version of a model: its state, and what it serves with while it holds a backend. */
export interface VersionSlot {
  version: string
  state: ModelState
  reason?: string
  /** Present from a successful load until the version is disposed (READY, then UNLOADING). */
  serving?: Serving
  fingerprint?: string
  /** Estimated resident bytes, counted against the memory budget while the slot holds a backend. */
  memoryBytes?: number
  /** The budget reservation of a version just loaded, released once it is in the routing table. */
  reservedBytes?: number
  /** Unloaded or refused by the memory budget: its next request loads it (again). */
  loadsOnRequest?: boolean
}

/** A version that takes requests. */
export type ReadySlot = VersionSlot & { state: 'READY'; serving: Serving }

export function isReady(slot: VersionSlot): slot is ReadySlot {
  return slot.state === 'READY' && slot.serving !== undefined
}

/** A slot that holds no backend, with why. */
export function unavailable(version: string, reason: string, loadsOnRequest = false): VersionSlot {
  return { version, state: 'UNAVAILABLE', reason, ...(loadsOnRequest ? { loadsOnRequest } : {}) }
}

export interface ModelEntry {
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

export const byVersion = (a: string, b: string) => Number(a) - Number(b)

/**
 * The repository's models as the daemon knows them (Triton's model repository manager): one entry
 * per model with its versions' states. The lifecycle changes it; routing and metadata read it.
 */
export class ModelTable {
  private readonly models = new Map<string, ModelEntry>()

  get(model: string): ModelEntry | undefined {
    return this.models.get(model)
  }

  has(model: string): boolean {
    return this.models.has(model)
  }

  entries(): IterableIterator<ModelEntry> {
    return this.models.values()
  }

  names(): string[] {
    return [...this.models.keys()]
  }

  add(model: string): ModelEntry {
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

  entry(model: string): ModelEntry {
    const entry = this.models.get(model)
    if (!entry) throw modelNotFound(model)
    return entry
  }

  slot(entry: ModelEntry, version: string): VersionSlot {
    const slot = entry.versions.get(version)
    if (!slot) {
      if (entry.loading.has(version))
        throw modelNotReady(`${entry.name}' version '${version}`, 'it is loading')
      throw versionNotFound(entry.name, version, [...entry.versions.keys()].sort(byVersion))
    }
    return slot
  }

  /** Ready versions, newest first. */
  readySlots(entry: ModelEntry): ReadySlot[] {
    return [...entry.versions.values()].filter(isReady).sort((a, b) => byVersion(b.version, a.version))
  }

  /** The version unversioned calls go to by default: the newest ready one that is not the shadow. */
  defaultSlot(entry: ModelEntry): ReadySlot {
    const ready = this.readySlots(entry)
    const chosen = ready.find((s) => s.version !== entry.shadow) ?? ready[0]
    if (!chosen) throw modelNotReady(entry.name, this.notReadyReason(entry))
    return chosen
  }

  /** The slot as a ready one, or MODEL_NOT_READY with its reason. */
  ready(entry: ModelEntry, slot: VersionSlot): ReadySlot {
    if (!isReady(slot)) {
      throw modelNotReady(`${entry.name}' version '${slot.version}`, slot.reason ?? slot.state.toLowerCase())
    }
    return slot
  }

  notReadyReason(entry: ModelEntry): string {
    if (entry.loading.size > 0) return 'it is loading'
    const reasons = [...entry.versions.values()]
      .filter((s) => s.reason)
      .map((s) => `version ${s.version}: ${s.reason}`)
    return entry.problem ?? (reasons.join('; ') || entry.notLoaded || 'no version is loaded')
  }

  /** The repository index (POST /v2/repository/index): every model and version with its state. */
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
        const serving = slot.state !== 'UNAVAILABLE' ? slot.serving : undefined
        const d = serving?.description
        rows.push({
          name: entry.name,
          version,
          state: slot.state,
          ...(slot.reason ? { reason: slot.reason } : {}),
          ...(serving && d
            ? {
                executionProvider: d.executionProvider,
                device: d.device,
                queueDepth: serving.scheduler.queueDepth,
                queueCapacity: serving.scheduler.queueCapacity,
              }
            : {}),
          ...(d?.fallbackReason ? { fallbackReason: d.fallbackReason } : {}),
        })
      }
    }
    return options.readyOnly ? rows.filter((r) => r.state === 'READY') : rows
  }
}
