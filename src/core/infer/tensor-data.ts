import type { Datatype, TensorData } from './types.js'

type NumericArrayConstructor =
  | Uint8ArrayConstructor
  | Int8ArrayConstructor
  | Uint16ArrayConstructor
  | Int16ArrayConstructor
  | Uint32ArrayConstructor
  | Int32ArrayConstructor
  | BigUint64ArrayConstructor
  | BigInt64ArrayConstructor
  | Float32ArrayConstructor
  | Float64ArrayConstructor

/** The typed array that carries each fixed-size datatype (BOOL as 0/1 bytes, FP16/BF16 as bit patterns). */
export const TYPED_ARRAY: Record<Exclude<Datatype, 'BYTES'>, NumericArrayConstructor> = {
  BOOL: Uint8Array,
  UINT8: Uint8Array,
  UINT16: Uint16Array,
  UINT32: Uint32Array,
  UINT64: BigUint64Array,
  INT8: Int8Array,
  INT16: Int16Array,
  INT32: Int32Array,
  INT64: BigInt64Array,
  FP16: Uint16Array,
  BF16: Uint16Array,
  FP32: Float32Array,
  FP64: Float64Array,
}

/** Elements a shape holds: the product of its dimensions (1 for a scalar). */
export function elementCount(shape: readonly number[]): number {
  let count = 1
  for (const dim of shape) count *= dim
  return count
}

/** A zero-filled buffer for `count` elements of a datatype (BYTES: empty strings). */
export function allocateData(datatype: Datatype, count: number): TensorData {
  if (datatype === 'BYTES') return Array.from({ length: count }, () => new Uint8Array(0))
  return new TYPED_ARRAY[datatype](count)
}

/** Whether data is in the representation types.ts prescribes for the datatype. */
export function dataMatches(datatype: Datatype, data: TensorData): boolean {
  if (datatype === 'BYTES') return Array.isArray(data) && data.every((e) => e instanceof Uint8Array)
  return !Array.isArray(data) && data.constructor === TYPED_ARRAY[datatype]
}

/**
 * Elements [start, end) of a tensor's data without copying (a typed-array view; BYTES elements are
 * shared, only the outer list is new).
 */
export function sliceData(data: TensorData, start: number, end: number): TensorData {
  return Array.isArray(data) ? data.slice(start, end) : data.subarray(start, end)
}

/** Copies `source` into `target` at element offset `offset` (same representation). */
export function copyInto(target: TensorData, source: TensorData, offset: number): void {
  if (Array.isArray(target)) {
    const src = source as Uint8Array[]
    for (let i = 0; i < src.length; i++) target[offset + i] = src[i]
  } else {
    ;(target as Float32Array).set(source as Float32Array, offset)
  }
}

/** Buffers that belong to one tensor alone, so a backend may move (transfer) them instead of copying. */
const movable = new WeakSet<ArrayBufferLike>()

/** Marks data whose whole ArrayBuffer nobody else reads (a batch the batcher assembled). */
export function markMovable(data: TensorData): TensorData {
  if (!Array.isArray(data)) movable.add(data.buffer)
  return data
}

/** Whether data's memory may be handed to another thread, leaving this side's view empty. */
export function isMovable(data: TensorData): boolean {
  return (
    !Array.isArray(data) &&
    movable.has(data.buffer) &&
    data.byteOffset === 0 &&
    data.byteLength === data.buffer.byteLength
  )
}

/**
 * Spare batch buffers, by byte length: the memory of batches a worker thread has finished with
 * comes back here and is filled again by the next batch of the same size, so a busy model
 * allocates nothing per batch (fresh ArrayBuffers of a few MB each would drive V8 into frequent
 * "external memory pressure" collections). Bounded in count per size and in bytes overall.
 */
const spare = new Map<number, ArrayBuffer[]>()
let spareBytes = 0
const SPARE_PER_SIZE = 4
const SPARE_LIMIT_BYTES = 64 * 1024 * 1024

/**
 * Movable memory for `count` elements of a datatype, from the spare buffers when one fits. Its
 * contents are undefined: the caller must overwrite every element.
 */
export function allocateMovable(datatype: Datatype, count: number): TensorData {
  if (datatype === 'BYTES') return allocateData(datatype, count)
  const Ctor = TYPED_ARRAY[datatype]
  const reused = spare.get(count * Ctor.BYTES_PER_ELEMENT)?.pop()
  if (reused) spareBytes -= reused.byteLength
  return markMovable(reused ? new Ctor(reused) : new Ctor(count))
}

/** A movable copy of numeric data (one copy, into spare memory when there is some). */
export function movableCopy(
  data: Exclude<TensorData, Uint8Array[]>,
  datatype: Exclude<Datatype, 'BYTES'>,
): Exclude<TensorData, Uint8Array[]> {
  const copy = allocateMovable(datatype, data.length) as Float32Array
  copy.set(data as Float32Array)
  return copy
}

/** Gives memory that a worker thread handed back to the spare buffers (dropped when they are full). */
export function recycleMovable(buffer: ArrayBuffer): void {
  const size = buffer.byteLength
  if (size === 0 || spareBytes + size > SPARE_LIMIT_BYTES) return
  const list = spare.get(size) ?? []
  if (list.length >= SPARE_PER_SIZE) return
  list.push(buffer)
  spare.set(size, list)
  spareBytes += size
  movable.add(buffer)
}
