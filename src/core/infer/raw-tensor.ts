import { elementCount, elementSize, TYPED_ARRAY } from './datatypes.js'
import { invalidInput } from './errors.js'
import type { Datatype, TensorData } from './types.js'

/**
 * Raw tensor bytes, as the REST binary tensor extension (`binary_tensor_data`, the bytes after the JSON
 * header) and gRPC's raw_input_contents / raw_output_contents carry them: little-endian elements, and
 * BYTES as 4-byte little-endian lengths each followed by the element. Inputs become typed-array views
 * over the received bytes (no copy) when the offset is aligned for the element size; unaligned data
 * is moved to an aligned offset in place when the caller allows it (see writableBefore), else copied.
 */

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

export interface BinaryDataOptions {
  /** Where the size came from, for the error message (gRPC: "its raw_input_contents entry has"). */
  sizeSource?: string
  /**
   * How many bytes just before the data (in its ArrayBuffer) the caller has finished reading and lets
   * the decoder overwrite: unaligned data is then moved down over them to an aligned offset in place,
   * instead of being copied into a new buffer.
   */
  writableBefore?: number
}

/** Decodes `size` bytes at `offset` of `binary` into the tensor data of one input. */
export function decodeBinaryData(
  name: string,
  datatype: Datatype,
  shape: number[],
  binary: Buffer,
  offset: number,
  size: number,
  { sizeSource = 'binary_data_size is', writableBefore = 0 }: BinaryDataOptions = {},
): TensorData {
  const count = elementCount(shape)
  if (datatype === 'BYTES') return decodeBinaryBytes(name, count, binary.subarray(offset, offset + size))
  const width = elementSize(datatype) as number
  if (size !== count * width) {
    throw invalidInput(
      `Input '${name}': shape [${shape.join(', ')}] of ${datatype} needs ${count * width} bytes but ${sizeSource} ${size}.`,
    )
  }
  if (!LITTLE_ENDIAN) throw invalidInput('The binary extension needs a little-endian host.') // never on x64/arm64
  const Ctor = TYPED_ARRAY[datatype as Exclude<Datatype, 'BYTES'>]
  const start = binary.byteOffset + offset
  const memory = binary.buffer as ArrayBuffer
  const misalignment = start % width
  if (misalignment === 0) return new Ctor(memory, start, count)
  if (misalignment <= writableBefore) {
    // A memmove within memory already in cache, where a new buffer costs an allocation and a copy.
    new Uint8Array(memory, start - misalignment, size + misalignment).copyWithin(0, misalignment)
    return new Ctor(memory, start - misalignment, count)
  }
  return new Ctor(memory.slice(start, start + size))
}

/** BYTES: each element is a 4-byte little-endian length followed by that many bytes. */
function decodeBinaryBytes(name: string, count: number, bytes: Buffer): Uint8Array[] {
  const out: Uint8Array[] = []
  let pos = 0
  while (pos < bytes.length) {
    if (pos + 4 > bytes.length)
      throw invalidInput(`Input '${name}': BYTES element ${out.length} has a truncated length prefix.`)
    const length = bytes.readUInt32LE(pos)
    pos += 4
    if (pos + length > bytes.length) {
      throw invalidInput(
        `Input '${name}': BYTES element ${out.length} claims ${length} bytes but fewer remain.`,
      )
    }
    out.push(new Uint8Array(bytes.buffer, bytes.byteOffset + pos, length))
    pos += length
  }
  if (out.length !== count) {
    throw invalidInput(
      `Input '${name}': shape holds ${count} BYTES elements but the binary data has ${out.length}.`,
    )
  }
  return out
}

/** The raw bytes of one output: a view over the typed array (no copy), or length-prefixed BYTES. */
export function encodeBinaryData(datatype: Datatype, data: TensorData): Buffer {
  if (datatype !== 'BYTES') {
    const view = data as Exclude<TensorData, Uint8Array[]>
    return Buffer.from(view.buffer, view.byteOffset, view.byteLength)
  }
  const elements = data as Uint8Array[]
  let total = 0
  for (const element of elements) total += 4 + element.byteLength
  const out = Buffer.allocUnsafe(total)
  let pos = 0
  for (const element of elements) {
    out.writeUInt32LE(element.byteLength, pos)
    out.set(element, pos + 4)
    pos += 4 + element.byteLength
  }
  return out
}
