import { invalidInput } from './errors.js'
import { dataMatches, elementCount } from './tensor-data.js'
import type { Tensor, TensorSpec } from './types.js'

/** A request whose inputs were checked against the model, ready for the scheduler. */
export interface PreparedRequest {
  /** Inputs in the model's order. */
  inputs: Tensor[]
  /** Items in the request: dim 0 when the model batches, else 1. */
  batchSize: number
  /** Requests batch together only when their keys are equal (same non-batch dims everywhere). */
  shapeKey: string
  /** Outputs asked for; undefined for all. */
  outputs?: string[]
}

export interface BatchingShape {
  /** Whether dim 0 of every input and output is the batch dimension. */
  batchable: boolean
  /** Largest batch one request may bring (0: no limit beyond the model's). */
  maxBatchSize: number
}

const show = (shape: readonly number[]) => `[${shape.join(',')}]`

/**
 * Checks a request against a model's signature (names, datatypes, ranks, fixed dims, element counts,
 * one batch size across inputs) and orders its inputs. Every refusal says exactly which tensor is
 * wrong and what was expected.
 */
export function prepareRequest(
  model: string,
  signature: { inputs: TensorSpec[]; outputs: TensorSpec[] },
  request: { inputs: Tensor[]; outputs?: string[] },
  batching: BatchingShape,
): PreparedRequest {
  const byName = new Map<string, Tensor>()
  const expected = signature.inputs.map((s) => s.name)
  for (const tensor of request.inputs) {
    if (byName.has(tensor.name)) throw invalidInput(`Input '${tensor.name}' is given twice.`)
    if (!expected.includes(tensor.name)) {
      throw invalidInput(
        `Model '${model}' has no input '${tensor.name}'; its inputs are ${expected.map((n) => `'${n}'`).join(', ')}.`,
      )
    }
    byName.set(tensor.name, tensor)
  }
  const missing = expected.filter((n) => !byName.has(n))
  if (missing.length > 0) {
    throw invalidInput(
      `Missing input${missing.length > 1 ? 's' : ''} ${missing.map((n) => `'${n}'`).join(', ')} for model '${model}'.`,
    )
  }
  const inputs: Tensor[] = []
  let batchSize: number | undefined
  const keys: string[] = []
  for (const spec of signature.inputs) {
    const tensor = byName.get(spec.name) as Tensor
    checkTensor(spec, tensor)
    if (batching.batchable) {
      const items = tensor.shape[0]
      if (batchSize === undefined) batchSize = items
      else if (items !== batchSize) {
        throw invalidInput(
          `Inputs disagree on the batch size (dim 0): '${inputs[0].name}' has ${batchSize}, '${spec.name}' has ${items}.`,
        )
      }
      keys.push(`${spec.name}:${tensor.shape.slice(1).join('x')}`)
    }
    inputs.push(tensor)
  }
  if (batching.batchable) {
    if (batchSize === 0) throw invalidInput(`The batch (dim 0) of the inputs of '${model}' is empty.`)
    if (batching.maxBatchSize > 0 && (batchSize as number) > batching.maxBatchSize) {
      throw invalidInput(
        `A batch of ${batchSize} exceeds max_batch_size ${batching.maxBatchSize} of model '${model}'.`,
        'Split the request into smaller batches, or raise max_batch_size in the model config.yaml.',
      )
    }
  }
  let outputs: string[] | undefined
  // An empty list asks for nothing in particular: every output, as when the list is absent.
  if (request.outputs !== undefined && request.outputs.length > 0) {
    const known = signature.outputs.map((s) => s.name)
    for (const name of request.outputs) {
      if (!known.includes(name)) {
        throw invalidInput(
          `Model '${model}' has no output '${name}'; its outputs are ${known.map((n) => `'${n}'`).join(', ')}.`,
        )
      }
    }
    outputs = [...new Set(request.outputs)]
  }
  return {
    inputs,
    batchSize: batching.batchable ? (batchSize as number) : 1,
    shapeKey: keys.join(';'),
    ...(outputs ? { outputs } : {}),
  }
}

function checkTensor(spec: TensorSpec, tensor: Tensor): void {
  if (tensor.datatype !== spec.datatype) {
    throw invalidInput(
      `Input '${spec.name}' has datatype ${tensor.datatype}; the model expects ${spec.datatype}.`,
    )
  }
  if (!Array.isArray(tensor.shape) || !tensor.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw invalidInput(`Input '${spec.name}': shape must be a list of non-negative integers.`)
  }
  const shapeOk =
    tensor.shape.length === spec.shape.length && spec.shape.every((d, i) => d === -1 || d === tensor.shape[i])
  if (!shapeOk) {
    throw invalidInput(
      `Input '${spec.name}' has shape ${show(tensor.shape)}; the model expects ${show(spec.shape)} (-1 = any size).`,
    )
  }
  if (!dataMatches(spec.datatype, tensor.data)) {
    throw invalidInput(`Input '${spec.name}': the data is not in the representation of ${spec.datatype}.`)
  }
  const needed = elementCount(tensor.shape)
  if (tensor.data.length !== needed) {
    throw invalidInput(
      `Input '${spec.name}' has ${tensor.data.length} elements, but shape ${show(tensor.shape)} needs ${needed}.`,
    )
  }
}

/**
 * Whether a signature allows batching on dim 0: every input and output has a dynamic first
 * dimension (a scalar or a fixed first dim means requests must run one by one).
 */
export function hasBatchDimension(signature: { inputs: TensorSpec[]; outputs: TensorSpec[] }): boolean {
  const all = [...signature.inputs, ...signature.outputs]
  return all.length > 0 && all.every((s) => s.shape.length > 0 && s.shape[0] === -1)
}
