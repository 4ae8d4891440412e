import { createHash } from 'node:crypto'
import type { Tensor } from './types.js'

/**
 * Responses keyed by a SHA-256 of the version, the requested outputs and every input's name,
 * datatype, shape and bytes; least recently used entries are evicted. Off unless a model's config
 * enables it, since only deterministic models may be cached.
 */
export class ResponseCache {
  private readonly entries = new Map<string, Tensor[]>()
  hits = 0
  misses = 0

  constructor(private readonly maxEntries: number) {}

  static key(version: string, inputs: Tensor[], outputs?: string[]): string {
    const hash = createHash('sha256')
    hash.update(`${version}\0${outputs ? outputs.join(',') : '*'}\0`)
    for (const t of inputs) {
      hash.update(`${t.name}\0${t.datatype}\0${t.shape.join(',')}\0`)
      if (Array.isArray(t.data)) {
        for (const element of t.data) hash.update(`${element.length}:`).update(element)
      } else {
        hash.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength))
      }
    }
    return hash.digest('hex')
  }

  get(key: string): Tensor[] | undefined {
    const hit = this.entries.get(key)
    if (!hit) {
      this.misses++
      return undefined
    }
    this.hits++
    this.entries.delete(key)
    this.entries.set(key, hit)
    return hit
  }

  set(key: string, outputs: Tensor[]): void {
    this.entries.delete(key)
    this.entries.set(key, outputs)
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string
      this.entries.delete(oldest)
    }
  }

  get size(): number {
    return this.entries.size
  }
}
