import { checkShape, elementCount, isDatatype } from '../../core/infer/datatypes.js'
import { invalidInput } from '../../core/infer/errors.js'
import { decodeBinaryData, encodeBinaryData } from '../../core/infer/raw-tensor.js'
import type { Datatype, InferRequest, InferResult, Tensor, TensorData } from '../../core/infer/types.js'

/**
 * ModelInferRequest / ModelInferResponse (inference.GRPCInferenceService) ↔ the core's tensors, as
 * @grpc/proto-loader hands them over (keepCase, int64 as decimal strings, bytes as Buffers, repeated
 * fields as arrays). Raw contents become typed-array views over the received bytes without a copy.
 */

export interface InferParameter {
  bool_param?: boolean
  int64_param?: string
  string_param?: string
  parameter_choice?: string
}

export interface TensorContents {
  bool_contents?: boolean[]
  int_contents?: number[]
  int64_contents?: string[]
  uint_contents?: number[]
  uint64_contents?: string[]
  fp32_contents?: number[]
  fp64_contents?: number[]
  bytes_contents?: Buffer[]
}

export interface GrpcInferRequest {
  model_name: string
  model_version?: string
  id?: string
  parameters?: Record<string, InferParameter>
  inputs: {
    name: string
    datatype: string
    shape: (string | number)[]
    parameters?: Record<string, InferParameter>
    contents?: TensorContents | null
  }[]
  outputs: { name: string; parameters?: Record<string, InferParameter> }[]
  raw_input_contents: Buffer[]
}

export interface GrpcOutputTensor {
  name: string
  datatype: string
  shape: string[]
  contents?: TensorContents
}

export interface GrpcInferResponse {
  model_name: string
  model_version: string
  id: string
  outputs: GrpcOutputTensor[]
  raw_output_contents: Buffer[]
}

/** The typed-contents field of each datatype; FP16 and BF16 have none (raw contents only). */
export const CONTENTS_FIELD: Record<Exclude<Datatype, 'FP16' | 'BF16'>, keyof TensorContents> = {
  BOOL: 'bool_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
  BYTES: 'bytes_contents',
}

const INT_RANGE: Partial<Record<Datatype, [number, number]>> = {
  INT8: [-0x80, 0x7f],
  INT16: [-0x8000, 0x7fff],
  UINT8: [0, 0xff],
  UINT16: [0, 0xffff],
}

function parseShape(name: string, shape: (string | number)[]): number[] {
  return checkShape(
    name,
    shape.map((d) => Number(d)),
  )
}

/** A typed-contents field's elements as the core's typed array, checked in count and range. */
function decodeContents(
  name: string,
  datatype: Datatype,
  shape: number[],
  contents: TensorContents,
): TensorData {
  if (datatype === 'FP16' || datatype === 'BF16') {
    throw invalidInput(
      `Input '${name}': ${datatype} has no typed contents field; send it in raw_input_contents.`,
    )
  }
  const field = CONTENTS_FIELD[datatype]
  const values = (contents[field] ?? []) as unknown[]
  const count = elementCount(shape)
  if (values.length !== count) {
    const other = (Object.keys(contents) as (keyof TensorContents)[]).find(
      (k) => k !== field && Array.isArray(contents[k]) && (contents[k] as unknown[]).length > 0,
    )
    throw invalidInput(
      other && values.length === 0
        ? `Input '${name}' (${datatype}) carries its elements in ${other}; ${datatype} goes in ${field}.`
        : `Input '${name}': shape [${shape.join(', ')}] holds ${count} elements but ${field} has ${values.length}.`,
    )
  }
  switch (datatype) {
    case 'BOOL':
      return Uint8Array.from(values as boolean[], (v) => (v ? 1 : 0))
    case 'BYTES':
      return (values as Buffer[]).map((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength))
    case 'INT64':
      return BigInt64Array.from(values as string[], (v) => BigInt(v))
    case 'UINT64':
      return BigUint64Array.from(values as string[], (v) => BigInt(v))
    case 'FP32':
      return Float32Array.from(values as number[])
    case 'FP64':
      return Float64Array.from(values as number[])
    case 'INT32':
      return Int32Array.from(values as number[])
    case 'UINT32':
      return Uint32Array.from(values as number[])
    default: {
      const [min, max] = INT_RANGE[datatype] as [number, number]
      const numbers = values as number[]
      for (let i = 0; i < numbers.length; i++) {
        if (numbers[i] < min || numbers[i] > max) {
          throw invalidInput(
            `Input '${name}' (${datatype}): element ${i} is ${numbers[i]}, expected an integer from ${min} to ${max}.`,
          )
        }
      }
      const Ctor = { INT8: Int8Array, INT16: Int16Array, UINT8: Uint8Array, UINT16: Uint16Array }[
        datatype as 'INT8' | 'INT16' | 'UINT8' | 'UINT16'
      ]
      return Ctor.from(numbers)
    }
  }
}

function hasContents(contents: TensorContents | null | undefined): boolean {
  if (!contents) return false
  return Object.values(contents).some((v) => Array.isArray(v) && v.length > 0)
}

/** A ModelInferRequest as the core's request (without the per-call parts: signal, deadline, headers). */
export interface DecodedGrpcRequest {
  request: Pick<InferRequest, 'model' | 'version' | 'id' | 'inputs' | 'outputs'>
  /** Whether the outputs go back in raw_output_contents (else typed contents). */
  rawOutputs: boolean
}

/** raw_input_contents is field 7 of ModelInferRequest, length-delimited (wire type 2): tag byte 0x3a. */
const RAW_INPUT_TAG = (7 << 3) | 2

/**
 * How many bytes of protobuf field header (the tag and the length varint) sit just before one
 * raw_input_contents entry in the received message, checked byte by byte; 0 when they are not found
 * there. The decoder reads the entry as a view over the received message, so once the message is
 * decoded those bytes are read and may be overwritten to align the entry's data (raw-tensor.ts).
 */
export function fieldHeaderBefore(bytes: Buffer): number {
  let varint = 1
  for (let n = bytes.length; n >= 0x80; n = Math.floor(n / 0x80)) varint++
  const start = bytes.byteOffset - varint - 1
  if (start < 0) return 0
  const header = new Uint8Array(bytes.buffer, start, varint + 1)
  if (header[0] !== RAW_INPUT_TAG) return 0
  let n = bytes.length
  for (let i = 1; i <= varint; i++) {
    const expected = i < varint ? (n % 0x80) | 0x80 : n
    if (header[i] !== expected) return 0
    n = Math.floor(n / 0x80)
  }
  return varint + 1
}

/**
 * Decodes the inputs (all raw or all typed, as the protocol requires) and decides how the outputs
 * travel: raw when the request sent raw inputs or an output asks for binary_data, typed otherwise. The
 * protocol forbids mixing the two in one response, and FP16/BF16 outputs have no typed field, so those
 * force raw as well (see encodeResponse).
 */
export function decodeInferRequest(message: GrpcInferRequest): DecodedGrpcRequest {
  if (!message.model_name) throw invalidInput('model_name is required.')
  const raw = message.raw_input_contents ?? []
  const inputs = message.inputs ?? []
  if (raw.length > 0 && raw.length !== inputs.length) {
    throw invalidInput(
      `raw_input_contents has ${raw.length} entries for ${inputs.length} inputs; send one per input, in input order, or none.`,
    )
  }
  const tensors: Tensor[] = inputs.map((input, i) => {
    const { name, datatype } = input
    if (!isDatatype(datatype)) throw invalidInput(`Input '${name}': unknown datatype '${datatype}'.`)
    const shape = parseShape(name, input.shape ?? [])
    if (raw.length > 0) {
      if (hasContents(input.contents)) {
        throw invalidInput(
          `Input '${name}' has both contents and raw_input_contents; with raw_input_contents every input goes there.`,
        )
      }
      const bytes = raw[i]
      return {
        name,
        datatype,
        shape,
        data: decodeBinaryData(name, datatype, shape, bytes, 0, bytes.length, {
          sizeSource: 'its raw_input_contents entry has',
          writableBefore: fieldHeaderBefore(bytes),
        }),
      }
    }
    return { name, datatype, shape, data: decodeContents(name, datatype, shape, input.contents ?? {}) }
  })
  const outputs = message.outputs ?? []
  const binary = outputs.some((o) => o.parameters?.binary_data?.bool_param === true)
  return {
    request: {
      model: message.model_name,
      ...(message.model_version ? { version: message.model_version } : {}),
      ...(message.id ? { id: message.id } : {}),
      inputs: tensors,
      ...(outputs.length > 0 ? { outputs: outputs.map((o) => o.name) } : {}),
    },
    rawOutputs: raw.length > 0 || binary,
  }
}

/** An output's elements in its typed-contents field. */
function encodeContents(datatype: Datatype, data: TensorData): TensorContents {
  switch (datatype) {
    case 'BOOL':
      return { bool_contents: Array.from(data as Uint8Array, (v) => v !== 0) }
    case 'BYTES':
      return {
        bytes_contents: (data as Uint8Array[]).map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)),
      }
    case 'INT64':
      return { int64_contents: Array.from(data as BigInt64Array, String) }
    case 'UINT64':
      return { uint64_contents: Array.from(data as BigUint64Array, String) }
    default: {
      const field = CONTENTS_FIELD[datatype as keyof typeof CONTENTS_FIELD]
      return { [field]: Array.from(data as Float32Array) }
    }
  }
}

/** The core's answer as a ModelInferResponse: all outputs raw, or all typed. */
export function encodeInferResponse(result: InferResult, rawOutputs: boolean): GrpcInferResponse {
  const raw = rawOutputs || result.outputs.some((o) => o.datatype === 'FP16' || o.datatype === 'BF16')
  return {
    model_name: result.modelName,
    model_version: result.modelVersion,
    id: result.id ?? '',
    outputs: result.outputs.map((o) => ({
      name: o.name,
      datatype: o.datatype,
      shape: o.shape.map(String),
      ...(raw ? {} : { contents: encodeContents(o.datatype, o.data) }),
    })),
    raw_output_contents: raw ? result.outputs.map((o) => encodeBinaryData(o.datatype, o.data)) : [],
  }
}
