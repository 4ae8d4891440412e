import type { Backend } from '../../../src/core/backends/backend.js'
import { type BackendOptions, onnxBackend } from '../../../src/core/backends/registry.js'
import type { Tensor } from '../../../src/core/infer/types.js'
import type { CoreLogger } from '../../../src/core/logger.js'

export const f32 = (name: string, shape: number[], values: ArrayLike<number>): Tensor => ({
  name,
  datatype: 'FP32',
  shape,
  data: Float32Array.from(values),
})

/** Deterministic pseudo-random floats (tests must not depend on luck, but want varied data). */
export function seededFloats(count: number, seed: number): Float32Array {
  const out = new Float32Array(count)
  let s = seed >>> 0 || 1
  for (let i = 0; i < count; i++) {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    out[i] = ((s >>> 0) / 2 ** 32) * 2 - 1
  }
  return out
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY
  let max = 0
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]))
  return max
}

export function recordingLogger() {
  const lines: { level: string; obj: Record<string, unknown>; msg?: string }[] = []
  const at = (level: string) => (obj: object, msg?: string) => {
    lines.push({ level, obj: obj as Record<string, unknown>, msg })
  }
  const logger: CoreLogger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
  return { logger, lines }
}

/** The error a promise rejects with (fails the test if it resolves). */
export async function rejection(
  promise: Promise<unknown>,
): Promise<Error & { code?: string; retryAfterSeconds?: number }> {
  try {
    await promise
  } catch (err) {
    return err as Error & { code?: string }
  }
  throw new Error('expected a rejection, but the promise resolved')
}

/**
 * The real ONNX backend, counted per model; `hold()` keeps every load() that starts from then on at
 * its door until the function it returns is called, so LOADING states can be observed.
 */
export function heldBackends() {
  const made = new Map<string, number>()
  let gate: Promise<void> = Promise.resolve()
  const onnx = (options: BackendOptions): Backend => {
    const model = options.label.split(':')[0]
    made.set(model, (made.get(model) ?? 0) + 1)
    const backend = onnxBackend(options)
    const load = backend.load.bind(backend)
    backend.load = async () => {
      await gate
      await load()
    }
    return backend
  }
  const hold = (): (() => void) => {
    let release!: () => void
    gate = new Promise<void>((resolve) => {
      release = resolve
    })
    return release
  }
  return { made, backends: { onnx }, hold }
}
