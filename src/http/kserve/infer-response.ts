import { encodeBinaryData } from '../../core/infer/raw-tensor.js'
import type { InferResult } from '../../core/infer/types.js'
import { encodeJsonData } from './json-tensor.js'

export interface EncodedInferResponse {
  payload: Buffer | string
  /** Set when binary outputs follow the JSON header (the Inference-Header-Content-Length value). */
  headerLength?: number
}

/**
 * Builds the infer response. JSON is assembled from per-tensor text so large float arrays are
 * stringified once and INT64 keeps every digit; binary outputs are appended as raw bytes.
 */
export function encodeInferResponse(
  result: InferResult,
  binaryOutput: (name: string) => boolean,
): EncodedInferResponse {
  // The core answers with exactly the outputs the request named, in its order.
  const chunks: Buffer[] = []
  const parts = result.outputs.map((output) => {
    const head = `{"name":${JSON.stringify(output.name)},"datatype":"${output.datatype}","shape":${JSON.stringify(output.shape)}`
    if (!binaryOutput(output.name)) return `${head},"data":${encodeJsonData(output.datatype, output.data)}}`
    const bytes = encodeBinaryData(output.datatype, output.data)
    chunks.push(bytes)
    return `${head},"parameters":{"binary_data_size":${bytes.byteLength}}}`
  })
  const id = result.id !== undefined ? `,"id":${JSON.stringify(result.id)}` : ''
  const header = `{"model_name":${JSON.stringify(result.modelName)},"model_version":${JSON.stringify(result.modelVersion)}${id},"outputs":[${parts.join(',')}]}`
  if (chunks.length === 0) return { payload: header }
  const head = Buffer.from(header)
  return { payload: Buffer.concat([head, ...chunks]), headerLength: head.byteLength }
}
