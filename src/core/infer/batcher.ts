import { allocateMovable, copyInto, elementCount, sliceData } from './tensor-data.js'
import type { Tensor } from './types.js'

/**
 * Concatenates the inputs of compatible requests along dim 0: one preallocated buffer per input,
 * filled once; the buffer is movable (a worker-thread backend transfers it instead of copying, and
 * hands it back for the next batch). A single
 * request passes through untouched (no copy at all).
 */
export function concatInputs(requests: { inputs: Tensor[]; batchSize: number }[]): Tensor[] {
  if (requests.length === 1) return requests[0].inputs
  const total = requests.reduce((n, r) => n + r.batchSize, 0)
  return requests[0].inputs.map((first, i) => {
    const itemShape = first.shape.slice(1)
    const perItem = elementCount(itemShape)
    // Every element is overwritten below, so spare memory of an earlier batch will do.
    const data = allocateMovable(first.datatype, total * perItem)
    let offset = 0
    for (const request of requests) {
      copyInto(data, request.inputs[i].data, offset)
      offset += request.batchSize * perItem
    }
    return { name: first.name, datatype: first.datatype, shape: [total, ...itemShape], data }
  })
}

/**
 * Splits batch outputs back per request by each one's batch size. Slices are views of the batch
 * buffers (no copy). Throws when an output's dim 0 is not the batch, which would mix requests up.
 */
export function splitOutputs(outputs: Tensor[], batchSizes: number[]): Tensor[][] {
  if (batchSizes.length === 1) return [outputs]
  const total = batchSizes.reduce((n, b) => n + b, 0)
  const perRequest: Tensor[][] = batchSizes.map(() => [])
  for (const output of outputs) {
    if (output.shape[0] !== total) {
      throw new Error(
        `output '${output.name}' has ${output.shape[0]} rows for a batch of ${total}; it cannot be split`,
      )
    }
    const itemShape = output.shape.slice(1)
    const perItem = elementCount(itemShape)
    let offset = 0
    batchSizes.forEach((size, r) => {
      const end = offset + size * perItem
      perRequest[r].push({
        name: output.name,
        datatype: output.datatype,
        shape: [size, ...itemShape],
        data: sliceData(output.data, offset, end),
      })
      offset = end
    })
  }
  return perRequest
}
