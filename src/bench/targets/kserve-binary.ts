import { UserError } from '../../shared/errors.js'
import type { JsonInput, KserveRequest } from './kserve-tensors.js'

/** Bytes per element of the fixed-size KServe datatypes (Open Inference Protocol). */
export const ELEMENT_BYTES: Record<string, number> = {
  BOOL: 1,
  UINT8: 1,
  INT8: 1,
  UINT16: 2,
  INT16: 2,
  FP16: 2,
  BF16: 2,
  UINT32: 4,
  INT32: 4,
  FP32: 4,
  UINT64: 8,
  INT64: 8,
  FP64: 8,
}

/** The request body and headers of the binary tensor extension. */
export interface BinaryBody {
  body: Uint8Array
  headers: Record<string, string>
}

/**
 * Re-encodes a JSON infer request with the binary tensor extension: every input's `data` moves to raw
 * little-endian bytes after the JSON header (`binary_data_size`), and all outputs come back binary.
 */
export function encodeBinaryRequest(request: KserveRequest): BinaryBody {
  const chunks: Buffer[] = []
  const inputs = request.inputs.map((input): JsonInput => {
    if (input.data === undefined) return input
    const bytes = tensorBytes(input)
    chunks.push(bytes)
    const { data: _data, ...rest } = input
    return { ...rest, parameters: { ...input.parameters, binary_data_size: bytes.length } }
  })
  const header = Buffer.from(
    JSON.stringify({ ...request, inputs, parameters: { ...request.parameters, binary_data_output: true } }),
    'utf8',
  )
  return {
    body: Buffer.concat([header, ...chunks]),
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.length),
    },
  }
}

/** The raw little-endian bytes of one input's `data` (BYTES: each element a 4-byte length, then the bytes). */
export function tensorBytes(input: JsonInput): Buffer {
  const values = (input.data as unknown[]).flat(Number.POSITIVE_INFINITY)
  if (input.datatype === 'BYTES') {
    return Buffer.concat(
      values.flatMap((v) => {
        const text = Buffer.from(String(v), 'utf8')
        const length = Buffer.alloc(4)
        length.writeUInt32LE(text.length)
        return [length, text]
      }),
    )
  }
  const size = ELEMENT_BYTES[input.datatype]
  if (size === undefined) {
    throw new UserError('BENCH_BAD_INPUT', `Input "${input.name}" has unknown datatype ${input.datatype}`, {
      hint: 'Use a KServe v2 datatype: BOOL, UINT8…UINT64, INT8…INT64, FP16, BF16, FP32, FP64 or BYTES.',
    })
  }
  const buffer = Buffer.alloc(values.length * size)
  for (let i = 0; i < values.length; i++) writeElement(buffer, input.datatype, i * size, values[i])
  return buffer
}

function writeElement(buffer: Buffer, datatype: string, offset: number, value: unknown): void {
  const n = Number(value)
  switch (datatype) {
    case 'BOOL':
    case 'UINT8':
      return void buffer.writeUInt8(n ? (datatype === 'BOOL' ? 1 : n) : 0, offset)
    case 'INT8':
      return void buffer.writeInt8(n, offset)
    case 'UINT16':
      return void buffer.writeUInt16LE(n, offset)
    case 'INT16':
      return void buffer.writeInt16LE(n, offset)
    case 'FP16':
      return void buffer.writeUInt16LE(float16Bits(n), offset)
    case 'BF16':
      return void buffer.writeUInt16LE(bfloat16Bits(n), offset)
    case 'UINT32':
      return void buffer.writeUInt32LE(n, offset)
    case 'INT32':
      return void buffer.writeInt32LE(n, offset)
    case 'FP32':
      return void buffer.writeFloatLE(n, offset)
    case 'UINT64':
      return void buffer.writeBigUInt64LE(BigInt(value as number), offset)
    case 'INT64':
      return void buffer.writeBigInt64LE(BigInt(value as number), offset)
    default:
      return void buffer.writeDoubleLE(n, offset)
  }
}

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

/** IEEE 754 binary16 bits of a number (round to nearest even; overflow → ±Infinity). */
export function float16Bits(value: number): number {
  f32[0] = value
  const x = u32[0]
  const sign = (x >>> 16) & 0x8000
  const exponent = ((x >>> 23) & 0xff) - 127 + 15
  let mantissa = x & 0x7fffff
  if (((x >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0)
  if (exponent >= 0x1f) return sign | 0x7c00
  if (exponent <= 0) {
    if (exponent < -10) return sign
    mantissa |= 0x800000
    const shift = 14 - exponent
    const half = mantissa >>> shift
    const rest = mantissa & ((1 << shift) - 1)
    const midpoint = 1 << (shift - 1)
    return sign | (half + (rest > midpoint || (rest === midpoint && half & 1) ? 1 : 0))
  }
  const half = sign | (exponent << 10) | (mantissa >>> 13)
  const rest = mantissa & 0x1fff
  return half + (rest > 0x1000 || (rest === 0x1000 && half & 1) ? 1 : 0)
}

/** bfloat16 bits: the upper half of the float32, rounded to nearest even. */
export function bfloat16Bits(value: number): number {
  f32[0] = value
  const x = u32[0]
  if (Number.isNaN(value)) return 0x7fc0
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff
}
