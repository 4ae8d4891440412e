import { invalidInput } from './errors.js'
import { TYPED_ARRAY } from './tensor-data.js'
import { DATATYPES, type Datatype } from './types.js'

// One table of datatype → typed array, shared with the inference core.
export { elementCount, TYPED_ARRAY } from './tensor-data.js'

export function isDatatype(value: unknown): value is Datatype {
  return typeof value === 'string' && (DATATYPES as readonly string[]).includes(value)
}

/** Bytes per element of the Open Inference Protocol's datatypes; undefined for BYTES, whose elements vary in size. */
export function elementSize(datatype: Datatype): number | undefined {
  return datatype === 'BYTES' ? undefined : TYPED_ARRAY[datatype].BYTES_PER_ELEMENT
}

/** Checks that a shape is a list of non-negative integers. */
export function checkShape(name: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw invalidInput(`Tensor '${name}': shape must be a list of non-negative integers.`)
  }
  return shape as number[]
}
