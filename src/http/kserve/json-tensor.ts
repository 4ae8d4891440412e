import { elementCount, TYPED_ARRAY } from '../../core/infer/datatypes.js'
import { invalidInput } from '../../core/infer/errors.js'
import { fromHalfBits, toHalfBits } from '../../core/infer/fp16.js'
import type { Datatype, TensorData } from '../../core/infer/types.js'

/**
 * JSON tensor data ↔ typed arrays. `data` is row-major, flat or nested. JSON has no NaN or ±Infinity,
 * so floats travel as the strings "NaN", "Infinity" and "-Infinity" (as Triton and KServe do); INT64/UINT64
 * beyond 2^53 cannot survive a JSON number, so they are accepted as decimal strings and emitted as
 * exact JSON number text.
 */

const INT_RANGE: Partial<Record<Datatype, [number, number]>> = {
  UINT8: [0, 0xff],
  UINT16: [0, 0xffff],
  UINT32: [0, 0xffffffff],
  INT8: [-0x80, 0x7f],
  INT16: [-0x8000, 0x7fff],
  INT32: [-0x80000000, 0x7fffffff],
}
const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n
const UINT64_MAX = 2n ** 64n - 1n
const SPECIAL_FLOATS: Record<string, number> = {
  NaN: Number.NaN,
  Infinity: Number.POSITIVE_INFINITY,
  '-Infinity': Number.NEGATIVE_INFINITY,
}
const utf8 = new TextEncoder()
const utf8Decoder = new TextDecoder()

/** Deepest nesting of `data` accepted: far beyond any tensor's rank, far below a stack overflow. */
export const MAX_DATA_NESTING = 64

/**
 * Row-major elements of flat or nested `data`; nesting must be regular (it is checked by count). The
 * walk keeps its own stack, and data nested deeper than MAX_DATA_NESTING is refused (a depth bomb).
 */
export function flatten(data: unknown[], name = 'data'): unknown[] {
  if (!data.some(Array.isArray)) return data
  const out: unknown[] = []
  const stack: { items: unknown[]; next: number }[] = [{ items: data, next: 0 }]
  while (stack.length > 0) {
    const top = stack[stack.length - 1]
    if (top.next >= top.items.length) {
      stack.pop()
      continue
    }
    const item = top.items[top.next++]
    if (!Array.isArray(item)) {
      out.push(item)
      continue
    }
    if (stack.length >= MAX_DATA_NESTING) {
      throw invalidInput(`Input '${name}': data is nested deeper than ${MAX_DATA_NESTING} levels.`)
    }
    stack.push({ items: item, next: 0 })
  }
  return out
}

/** Turns the `data` of a JSON input into the typed representation of types.ts, checking every element. */
export function decodeJsonData(name: string, datatype: Datatype, shape: number[], data: unknown): TensorData {
  if (!Array.isArray(data)) throw invalidInput(`Input '${name}': data must be an array.`)
  const flat = flatten(data, name)
  const expected = elementCount(shape)
  if (flat.length !== expected) {
    throw invalidInput(
      `Input '${name}': shape [${shape.join(', ')}] holds ${expected} elements but data has ${flat.length}.`,
    )
  }
  const bad = (index: number, what: string) =>
    invalidInput(
      `Input '${name}' (${datatype}): element ${index} is ${JSON.stringify(flat[index])}, expected ${what}.`,
    )

  switch (datatype) {
    case 'BYTES':
      return flat.map((value, i) => {
        if (typeof value !== 'string') throw bad(i, 'a string')
        return utf8.encode(value)
      })
    case 'BOOL': {
      const out = new Uint8Array(flat.length)
      for (let i = 0; i < flat.length; i++) {
        const value = flat[i]
        if (value === true || value === 1) out[i] = 1
        else if (value !== false && value !== 0) throw bad(i, 'true or false')
      }
      return out
    }
    case 'FP16':
    case 'FP32':
    case 'FP64': {
      const out = new TYPED_ARRAY[datatype](flat.length) as Float32Array | Float64Array | Uint16Array
      const half = datatype === 'FP16'
      for (let i = 0; i < flat.length; i++) {
        let value = flat[i]
        if (typeof value === 'string' && value in SPECIAL_FLOATS) value = SPECIAL_FLOATS[value]
        if (typeof value !== 'number') throw bad(i, 'a number (or "NaN", "Infinity", "-Infinity")')
        out[i] = half ? toHalfBits(value) : value
      }
      return out
    }
    case 'INT64':
    case 'UINT64': {
      const signed = datatype === 'INT64'
      const out = signed ? new BigInt64Array(flat.length) : new BigUint64Array(flat.length)
      const [min, max] = signed ? [INT64_MIN, INT64_MAX] : [0n, UINT64_MAX]
      for (let i = 0; i < flat.length; i++) {
        const value = flat[i]
        let big: bigint
        if (typeof value === 'number' && Number.isSafeInteger(value)) big = BigInt(value)
        else if (typeof value === 'string' && /^-?\d{1,20}$/.test(value)) big = BigInt(value)
        else throw bad(i, 'an integer (beyond ±2^53 as a decimal string, or use the binary extension)')
        if (big < min || big > max) throw bad(i, `an integer in ${datatype} range`)
        out[i] = big
      }
      return out
    }
    case 'BF16':
      throw invalidInput(
        `Input '${name}': BF16 tensors travel only through the binary extension.`,
        'Send the input with "parameters": {"binary_data_size": N} and its raw bytes after the JSON header.',
      )
    default: {
      const [min, max] = INT_RANGE[datatype] as [number, number]
      const out = new TYPED_ARRAY[datatype](flat.length) as Exclude<
        TensorData,
        Uint8Array[] | BigInt64Array | BigUint64Array
      >
      for (let i = 0; i < flat.length; i++) {
        const value = flat[i]
        if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
          throw bad(i, `an integer from ${min} to ${max}`)
        }
        out[i] = value
      }
      return out
    }
  }
}

function floatsToJson(values: ArrayLike<number>): string {
  let finite = true
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      finite = false
      break
    }
  }
  if (finite) return JSON.stringify(Array.from(values))
  return `[${Array.from(values, (v) => (Number.isFinite(v) ? String(v) : `"${Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity'}"`)).join(',')}]`
}

/** The JSON text of an output's flat `data` array. */
export function encodeJsonData(datatype: Datatype, data: TensorData): string {
  switch (datatype) {
    case 'BYTES':
      return JSON.stringify((data as Uint8Array[]).map((bytes) => utf8Decoder.decode(bytes)))
    case 'BOOL':
      return `[${Array.from(data as Uint8Array, (v) => (v ? 'true' : 'false')).join(',')}]`
    case 'FP16':
      return floatsToJson(Array.from(data as Uint16Array, fromHalfBits))
    case 'BF16':
      return floatsToJson(
        Array.from(new Float32Array(Uint32Array.from(data as Uint16Array, (b) => b << 16).buffer)),
      )
    case 'FP32':
    case 'FP64':
      return floatsToJson(data as Float32Array | Float64Array)
    case 'INT64':
    case 'UINT64':
      // bigint text is exact; JSON numbers may hold any digits (parsers may round; use binary then).
      return `[${Array.from(data as BigInt64Array, String).join(',')}]`
    default:
      return JSON.stringify(Array.from(data as Int32Array))
  }
}
