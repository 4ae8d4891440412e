import { UserError } from '../../shared/errors.js'
import { DATATYPES, type Datatype } from '../infer/types.js'

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

/** The typed array that carries each fixed-size datatype (types.ts: BOOL 0/1 bytes, FP16/BF16 bit patterns). */
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

export function isDatatype(value: unknown): value is Datatype {
  return typeof value === 'string' && (DATATYPES as readonly string[]).includes(value)
}

/** Bytes per element (REFERENCE.md); undefined for BYTES, whose elements vary in size. */
export function elementSize(datatype: Datatype): number | undefined {
  return datatype === 'BYTES' ? undefined : TYPED_ARRAY[datatype].BYTES_PER_ELEMENT
}

/** Elements a shape holds: the product of its dimensions (1 for a scalar). */
export function elementCount(shape: readonly number[]): number {
  let count = 1
  for (const dim of shape) count *= dim
  return count
}

export function invalidInput(message: string, hint?: string): UserError {
  return new UserError('INVALID_INPUT', message, {
    hint: hint ?? 'Check the tensor names, shapes and datatypes against GET /v2/models/{model}.',
  })
}

/** Checks that a shape is a list of non-negative integers. */
export function checkShape(name: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw invalidInput(`Tensor '${name}': shape must be a list of non-negative integers.`)
  }
  return shape as number[]
}
