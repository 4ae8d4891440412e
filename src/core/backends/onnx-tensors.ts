import * as ort from 'onnxruntime-node'
import { dataMatches, TYPED_ARRAY } from '../infer/tensor-data.js'
import type { Datatype, Tensor, TensorData, TensorSpec } from '../infer/types.js'

/** KServe datatype → onnxruntime tensor type; BF16 has no onnxruntime-node type. */
export const ORT_TYPE: Partial<Record<Datatype, ort.Tensor.Type>> = {
  BOOL: 'bool',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
  BYTES: 'string',
}

const DATATYPE_OF = new Map<string, Datatype>(
  Object.entries(ORT_TYPE).map(([d, t]) => [t as string, d as Datatype]),
)

/** The typed array an onnxruntime tensor type's data comes in; undefined for strings and unknown types. */
export function ortTypedArray(type: string) {
  const datatype = DATATYPE_OF.get(type)
  return datatype && datatype !== 'BYTES' ? TYPED_ARRAY[datatype] : undefined
}

const utf8Decoder = new TextDecoder()
const utf8Encoder = new TextEncoder()

/** A model input/output as a TensorSpec; throws for values helix cannot serve (sequences, maps, odd types). */
export function specFromMetadata(meta: ort.InferenceSession.ValueMetadata): TensorSpec {
  if (!meta.isTensor) throw new Error(`'${meta.name}' is not a tensor (sequences and maps are not supported)`)
  const datatype = DATATYPE_OF.get(meta.type)
  if (!datatype) throw new Error(`'${meta.name}' has onnx type ${meta.type}, which helix cannot serve`)
  // Symbolic dims ('batch', 'p2o.DynamicDimension.0') and unknown ones are dynamic: -1.
  const shape = meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1))
  return { name: meta.name, datatype, shape }
}

export function toOrtTensor(tensor: Tensor): ort.Tensor {
  const type = ORT_TYPE[tensor.datatype]
  if (!type) throw new Error(`datatype ${tensor.datatype} cannot be fed to onnxruntime`)
  if (type === 'string') {
    const strings = (tensor.data as Uint8Array[]).map((b) => utf8Decoder.decode(b))
    return new ort.Tensor('string', strings, tensor.shape)
  }
  return new ort.Tensor(type as 'float32', tensor.data as Float32Array, tensor.shape)
}

export function fromOrtTensor(name: string, value: ort.Tensor): Tensor {
  return fromOrtParts(name, value.type, [...value.dims], value.data)
}

/** A Tensor from an onnxruntime result's parts (also as they arrive from a worker thread). */
export function fromOrtParts(name: string, type: string, dims: readonly number[], raw: unknown): Tensor {
  const datatype = DATATYPE_OF.get(type)
  if (!datatype) throw new Error(`output '${name}' has onnx type ${type}, which helix cannot return`)
  const shape = [...dims]
  let data: TensorData
  if (datatype === 'BYTES') {
    data = (raw as string[]).map((s) => utf8Encoder.encode(s))
  } else {
    data = raw as TensorData
    if (!dataMatches(datatype, data)) {
      // e.g. float16 as a Float16Array where the runtime has one: keep the bit pattern, not the value.
      const view = data as unknown as ArrayBufferView
      const Ctor = TYPED_ARRAY[datatype]
      data = new Ctor(
        view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength) as ArrayBuffer,
      ) as TensorData
    }
  }
  return { name, datatype, shape, data }
}
