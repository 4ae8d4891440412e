import { endianness } from 'node:os'

const LITTLE_ENDIAN = endianness() === 'LE'

/**
 * One embedding as OpenAI's `encoding_format` asks: `float` a JSON number list, `base64` the vector's
 * little-endian float32 bytes (what OpenAI's clients ask for by default and decode themselves).
 */
export function encodeEmbedding(vector: Float32Array, format: 'float' | 'base64'): number[] | string {
  if (format === 'float') return Array.from(vector)
  if (LITTLE_ENDIAN)
    return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64')
  const bytes = Buffer.alloc(vector.byteLength)
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i], i * 4)
  return bytes.toString('base64')
}
