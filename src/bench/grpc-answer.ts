import type { GrpcAnswerCheck } from './types.js'

/** A ModelInferResponse as the bench decodes it (proto field names, defaults filled in). */
export interface InferAnswer {
  model_name: string
  model_version: string
  id: string
  outputs: { name: string; datatype: string; shape: string[] }[]
  raw_output_contents: Buffer[]
}

/** A ModelStreamInferResponse: a failed request carries error_message, and the stream goes on. */
export interface StreamAnswer {
  error_message: string
  infer_response?: InferAnswer | null
}

/**
 * Why an answer does not match what the probe answer established, as an error kind, or undefined
 * when it does: the echoed id (so a stream's answers are known to come back in request order), the
 * output names and datatypes, and each raw output's size.
 */
export function answerProblem(answer: InferAnswer, check: GrpcAnswerCheck, id?: string): string | undefined {
  if (id !== undefined && answer.id !== id) return 'answer out of order'
  const outputs = answer.outputs
  if (outputs.length !== check.outputs.length) return 'wrong outputs'
  for (let i = 0; i < outputs.length; i++) {
    const expected = check.outputs[i]
    if (outputs[i].name !== expected.name || outputs[i].datatype !== expected.datatype) return 'wrong outputs'
    if (expected.bytes !== undefined && answer.raw_output_contents[i]?.length !== expected.bytes)
      return 'wrong output size'
  }
  return undefined
}

// ModelInferRequest.id is field 3, a string: wire type 2 (length-delimited).
const ID_TAG = (3 << 3) | 2

/**
 * The encoded `id` field of a ModelInferRequest. Protobuf reads the last occurrence of a singular
 * field, so appending it to a request encoded once gives each call its own id without re-encoding
 * the tensors.
 */
export function idField(id: string): Buffer {
  const text = Buffer.from(id, 'utf8')
  const length: number[] = []
  let n = text.length
  while (n > 0x7f) {
    length.push((n & 0x7f) | 0x80)
    n >>>= 7
  }
  length.push(n)
  return Buffer.concat([Buffer.from([ID_TAG, ...length]), text])
}
