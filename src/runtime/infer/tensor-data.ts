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
