import { isMovable, movableCopy } from '../../infer/tensor-data.js'
import type { Datatype, Tensor, TensorData, TensorSpec } from '../../infer/types.js'

/** The tensor dtypes of TensorFlow.js (int64, uint8, float16 … all become int32 or float32 when loaded). */
export type TfjsDtype = 'float32' | 'int32' | 'bool' | 'string' | 'complex64'

/** KServe datatype → TensorFlow.js dtype: the four helix serves (complex64 has no KServe datatype). */
export const TFJS_DTYPE: Partial<Record<Datatype, Exclude<TfjsDtype, 'complex64'>>> = {
  FP32: 'float32',
  INT32: 'int32',
  BOOL: 'bool',
  BYTES: 'string',
}

const DATATYPE_OF = new Map<string, Datatype>(
  Object.entries(TFJS_DTYPE).map(([datatype, dtype]) => [dtype as string, datatype as Datatype]),
)

/**
 * TensorFlow's DataType names (a graph model's signature) → the dtype tfjs gives the tensor, as
 * tfjs-converter's parseDtypeParam maps them: 64-bit and 8-bit integers load as int32, half and
 * double as float32.
 */
const DTYPE_OF_PROTO: Record<string, TfjsDtype> = {
  DT_FLOAT: 'float32',
  DT_HALF: 'float32',
  DT_DOUBLE: 'float32',
  DT_INT32: 'int32',
  DT_INT64: 'int32',
  DT_INT8: 'int32',
  DT_UINT8: 'int32',
  DT_BOOL: 'bool',
  DT_STRING: 'string',
  DT_COMPLEX64: 'complex64',
  DT_COMPLEX128: 'complex64',
}

/** A tensor of a model's signature as the worker or model.json reports it; shape or dtype may be unknown. */
export interface TfjsTensorInfo {
  name: string
  /** -1 or null for a dynamic dimension; undefined for an unknown rank. */
  shape?: (number | null)[]
  dtype?: string
}

/** The tfjs dtype of a signature entry's DataType name (DT_FLOAT …); undefined for one tfjs does not load. */
export function dtypeOfProto(name: string | undefined): TfjsDtype | undefined {
  return name === undefined ? undefined : DTYPE_OF_PROTO[name]
}

/** The KServe datatype of a tfjs dtype; throws naming the tensor for dtypes helix cannot serve. */
export function datatypeOf(dtype: string, what: string): Datatype {
  const datatype = DATATYPE_OF.get(dtype)
  if (!datatype) {
    throw new Error(
      `${what} is a ${dtype} tensor, which helix cannot serve from a TensorFlow.js model (it serves float32, int32, bool and string)`,
    )
  }
  return datatype
}

/** A known signature entry as a TensorSpec: dynamic dimensions become -1. */
export function specOf(info: Required<TfjsTensorInfo>, what: string): TensorSpec {
  return {
    name: info.name,
    datatype: datatypeOf(info.dtype, what),
    shape: info.shape.map((d) => (d === null || d < 0 ? -1 : d)),
  }
}

/** What a run message carries per input. */
export interface TfjsFeed {
  name: string
  dtype: Exclude<TfjsDtype, 'complex64'>
  shape: number[]
  data: Exclude<TensorData, Uint8Array[]> | Uint8Array[]
}

/**
 * Inputs as the worker thread takes them. A batch the batcher assembled owns its buffer, which moves
 * to the worker with no copy; a view of a request body (which a shadow version or the cache may
 * still read) is copied once into movable memory (the same rule as the ONNX worker threads).
 */
export function feedsFor(
  inputs: Tensor[],
  specs: TensorSpec[],
): { feeds: TfjsFeed[]; transfer: ArrayBuffer[] } {
  const transfer: ArrayBuffer[] = []
  const feeds = inputs.map((tensor): TfjsFeed => {
    const spec = specs.find((s) => s.name === tensor.name)
    if (!spec) throw new Error(`the model has no input '${tensor.name}'`)
    if (tensor.datatype !== spec.datatype) {
      throw new Error(`input '${tensor.name}' is ${tensor.datatype} but the model takes ${spec.datatype}`)
    }
    const dtype = TFJS_DTYPE[tensor.datatype] as TfjsFeed['dtype']
    if (Array.isArray(tensor.data))
      return { name: tensor.name, dtype, shape: tensor.shape, data: tensor.data }
    const numeric = tensor.data as Exclude<TensorData, Uint8Array[]>
    const data = isMovable(numeric)
      ? numeric
      : movableCopy(numeric, tensor.datatype as Exclude<Datatype, 'BYTES'>)
    transfer.push(data.buffer as ArrayBuffer)
    return { name: tensor.name, dtype, shape: tensor.shape, data }
  })
  return { feeds, transfer }
}

/** A worker's output as a helix Tensor (float32 → FP32 Float32Array, bool → BOOL 0/1 bytes …). */
export function fromTfjs(output: { name: string; dtype: string; shape: number[]; data: unknown }): Tensor {
  const datatype = datatypeOf(output.dtype, `output '${output.name}'`)
  return { name: output.name, datatype, shape: [...output.shape], data: output.data as TensorData }
}
