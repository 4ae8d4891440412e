import { endianness } from 'node:os'

const LITTLE_ENDIAN = endianness() === 'LE'

/**
 * One embedding as OpenAI's `encoding_format` asks: `float` a JSON number list, `base64` the vector's
 * little-endian float32 bytes (what OpenAI's clients ask for by default and decode themselves).
 */
export function encodeEmbedding(vector: Float32Array, format: 'float' | 'base64'): number[] | string {
  if (format === 'float') return Array.from(vector)
  const bytes = Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength)
  // A big-endian host swaps a copy, never the engine's vector.
  return (LITTLE_ENDIAN ? bytes : Buffer.from(bytes).swap32()).toString('base64')
}
