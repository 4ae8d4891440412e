import { checkShape, isDatatype } from '../../core/infer/datatypes.js'
import { invalidInput } from '../../core/infer/errors.js'
import { decodeBinaryData } from '../../core/infer/raw-tensor.js'
import type { Tensor } from '../../core/infer/types.js'
import type { InferRequestBody } from '../schemas/v2.js'
import { decodeJsonData } from './json-tensor.js'

/** An infer request body turned into core tensors, plus what the response encoder needs to know. */
export interface DecodedInferRequest {
  id?: string
  inputs: Tensor[]
  /** Requested output names, in request order; undefined means all. */
  outputs?: string[]
  /** Whether an output goes back as binary data (binary_data per output, else binary_data_output). */
  binaryOutput: (name: string) => boolean
}

function binarySize(name: string, parameters: Record<string, unknown> | undefined): number | undefined {
  const size = parameters?.binary_data_size
  if (size === undefined) return undefined
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw invalidInput(`Input '${name}': binary_data_size must be a non-negative integer.`)
  }
  return size
}

/**
 * Decodes the JSON part of an infer request (already schema-validated) and, for the binary extension,
 * the raw bytes that followed the JSON header.
 */
export function decodeInferRequest(body: InferRequestBody, binary?: Buffer): DecodedInferRequest {
  // Names are checked against the model (unknown, missing, given twice) by the core, for every protocol.
  let offset = 0
  const inputs: Tensor[] = body.inputs.map((input) => {
    const { name, datatype } = input
    if (!isDatatype(datatype)) throw invalidInput(`Input '${name}': unknown datatype '${datatype}'.`)
    const shape = checkShape(name, input.shape)
    const size = binarySize(name, input.parameters)
    if (size === undefined) {
      if (input.data === undefined) {
        throw invalidInput(`Input '${name}' has neither data nor parameters.binary_data_size.`)
      }
      return { name, datatype, shape, data: decodeJsonData(name, datatype, shape, input.data) }
    }
    if (input.data !== undefined)
      throw invalidInput(`Input '${name}' has both data and binary_data_size; send one.`)
    if (!binary || offset + size > binary.length) {
      throw invalidInput(
        `Input '${name}': binary_data_size ${size} runs past the end of the binary data (${(binary?.length ?? 0) - offset} bytes left after the JSON header).`,
        'Send the JSON header length in Inference-Header-Content-Length and the raw bytes of each binary input after it, in input order.',
      )
    }
    const data = decodeBinaryData(name, datatype, shape, binary, offset, size)
    offset += size
    return { name, datatype, shape, data }
  })
  if (binary && offset !== binary.length) {
    throw invalidInput(
      `The request carries ${binary.length} bytes of binary data but its inputs' binary_data_size add up to ${offset}.`,
    )
  }

  const allBinary = body.parameters?.binary_data_output === true
  const perOutput = new Map<string, boolean>()
  for (const output of body.outputs ?? []) {
    const flag = output.parameters?.binary_data
    if (typeof flag === 'boolean') perOutput.set(output.name, flag)
  }
  return {
    ...(body.id !== undefined ? { id: body.id } : {}),
    inputs,
    outputs: body.outputs?.map((o) => o.name),
    binaryOutput: (name) => perOutput.get(name) ?? allBinary,
  }
}
